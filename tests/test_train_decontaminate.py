"""Decontamination catches lightly edited evaluation problems and spares boilerplate phrasing
(train/decontaminate.py, measured with train/decontamination_edits.py)."""

import pytest

from eval.splits import load_split
from train import decontamination_edits as edits
from train.decontaminate import NGRAM, build_eval_ngrams, decontaminate, measure, normalize


@pytest.fixture(scope="module")
def index():
    return build_eval_ngrams()


def _problem(split: str, predicate) -> str:
    problems, _ = load_split(split)
    return next(p.problem for p in problems if predicate(p.problem))


def _dropped(index, text: str) -> bool:
    _, report = decontaminate([{"id": "row", "problem": text}], index)
    return report["dropped"] == 1


def test_short_problem_behind_a_prefix_is_dropped(index):
    short = _problem("math500", lambda text: len(normalize(text)) < NGRAM)
    kept, report = decontaminate([{"id": "prefixed", "problem": "Problem: " + short + " Show your work."}], index)
    assert kept == [] and "math500" in report["dropped_rows"][0]["splits"]


def test_short_problem_is_matched_word_by_word(index):
    # "Simplify $\sqrt{242}$." is an evaluation problem; 2420 is another number, not a copy.
    assert _dropped(index, "Question: Simplify $\\sqrt{242}$.")
    assert not _dropped(index, "Question: Simplify $\\sqrt{2420}$.")


def test_latex_spelling_variants_are_dropped(index):
    # A short problem is one n-gram: a single respelt command would hide it.
    problems = [p.problem for split in ("math500", "math-l4", "math-l5") for p in load_split(split)[0]]
    short = [t for t in problems if len(normalize(t)) < NGRAM and ("\\frac" in t or "(" in t)]
    assert len(short) >= 5
    for text in short:
        variant = text.replace("\\frac", "\\dfrac").replace("(", "\\left(").replace(")", "\\right)")
        assert _dropped(index, variant.replace("$", "$\\,").replace(",", ",\\;")), variant


def test_unrelated_problems_in_evaluation_phrasing_are_kept(index):
    # "... where m and n are relatively prime positive integers. Find m+n." ends many AIME/AMC
    # problems; an unrelated problem ending so is no copy of any of them.
    rows = [{"id": f"boilerplate-{i}", "problem": text} for i, text in enumerate(edits.BOILERPLATE_ROWS)]
    kept, report = decontaminate(rows, index)
    assert report["dropped_rows"] == [] and kept == rows


def test_normalizing_twice_changes_nothing():
    text = "Let $x = \\dfrac{3}{4}$; find 3x + 2y, where $m$ and $n$ are coprime."
    assert normalize(" ".join(normalize(text))) == normalize(text)


def test_measured_recall_and_false_positive_rate(index):
    figures = measure(index)
    assert figures["problems"] > 3000 and figures["edited_copies"] > 15000
    assert figures["recall_same_problem"] >= 0.99, figures["recall_by_edit"]
    assert min(figures["recall_by_edit"].values()) >= 0.95, figures["recall_by_edit"]
    assert figures["clean_rows"] >= 400 and figures["false_positive_rate"] <= 0.0025, figures["false_positive_ids"]


def test_report_carries_the_measured_figures(index):
    _, report = decontaminate([{"id": "clean", "problem": "zebra quokka narwhal"}], index)
    assert report["measured"] == measure(index)
    assert report["boilerplate_problems"] >= 1 and report["ignored_boilerplate_ngrams"] > 0


def test_edited_copies_are_seeded():
    problems = [("aime", "p", "Let $x=\\frac{1}{2}$ and $y = 3$. Find $(x+y)$ for Ann and Bob.")]
    assert edits.edited_copies(problems, edits.SAME_PROBLEM, 3) == edits.edited_copies(problems, edits.SAME_PROBLEM, 3)
    assert {row["edit"] for row in edits.edited_copies(problems, edits.SAME_PROBLEM)} == set(edits.SAME_PROBLEM)
