"""Drop training rows whose problem overlaps an evaluation problem (13-gram rule).

The rule follows Qwen2.5-Math's decontamination (word 13-grams after text normalisation),
with three changes that the measurement below showed were needed:

* Normalisation: LaTeX spelling variants are made one first, with the rule the answer code
  uses (``kit.answers.normalize_latex``: ``\\dfrac``/``\\tfrac`` -> ``\\frac``, ``\\left``/``\\right``
  dropped, ``$`` and spacing commands a space); Asymptote figures (``[asy]...[/asy]``) are left
  out, their code being shared preambles (GeoGebra grids) more often than anything that tells
  problems apart; then the text is lowercased, anything that is neither a letter nor a digit
  separates words (``\\frac{1}{2}`` is the words ``frac 1 2``), so does a change between digits
  and letters (``3x`` is ``3 x``), and every one-letter word is the same word (``VARIABLE``), so
  that renaming a variable (``x`` to ``t``) leaves the words as they were.
* Short problems: an evaluation problem of L < 13 words gives its one L-gram (its whole text),
  and a training problem *containing* it overlaps it ("Problem: Simplify $\\sqrt{242}$.").
* Boilerplate: an n-gram found in more than ``BOILERPLATE_PROBLEMS`` distinct evaluation
  problems is phrasing, not a problem ("... \\frac{m}{n}, where m and n are relatively prime
  positive integers. Find m+n") and is ignored.

A training row is dropped when its problem contains any remaining n-gram. The evaluation side
is every split of ``eval.splits.SPLITS`` by default. The report names, for each dropped row, the
evaluation split(s) and problem ids it overlapped (so that a drop can be checked by hand), and
carries the rule's measured recall on edited copies of the evaluation problems and its false
positive rate on clean training problems (``measure``; ``python -m train measure-decontamination``).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from eval.splits import SPLITS, load_split
from kit.answers import normalize_latex
from kit.problem_io import iter_rows
from train import decontamination_edits as edits

log = logging.getLogger(__name__)

NGRAM = 13
# Chosen by measurement (measure() with thresholds 1, 2, 3, 4, 8 and none, all splits): with
# 1, near-duplicate evaluation problems (an AMC problem in `amc` and reworded in `amc23`) lose
# the n-grams they share and fewer changed-number copies are caught; 2 to 4 give the same
# recall and false positives; from 8 on, the clean rows in evaluation phrasing
# (train.decontamination_edits.BOILERPLATE_ROWS) are dropped (one at 8, three with no
# threshold). 2 is the lowest with no loss.
BOILERPLATE_PROBLEMS = 2
# The word every one-letter word becomes (a word itself, so normalising twice changes nothing).
VARIABLE = "x"

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
_DIGIT_LETTER = re.compile(r"(?<=\d)(?=[^\W\d_])|(?<=[^\W\d_])(?=\d)")
_ASY = re.compile(r"\[asy\].*?\[/asy\]", re.S)

CLEAN_ROWS = Path(__file__).resolve().parent / "data" / "gsm8k_train_slice.jsonl"
# Rows of CLEAN_ROWS that are true near-duplicates of an evaluation problem (checked by hand),
# so not false positives: the same text with the names and numbers changed.
KNOWN_NEAR_DUPLICATES = {"gsm8k-train-20": "gsm8k:gsm8k-test-632"}


def normalize(text: str) -> list[str]:
    """The words of ``text`` as the n-gram rule reads them (see the module's docstring)."""
    text = _ASY.sub(" ", normalize_latex(text).lower())
    words = _NON_WORD.sub(" ", _DIGIT_LETTER.sub(" ", text)).split()
    return [VARIABLE if len(word) == 1 and word.isalpha() else word for word in words]


@dataclass(frozen=True, eq=False)
class EvalNgrams:
    """The n-gram index of a set of evaluation problems."""

    ngrams: dict[str, frozenset[tuple[str, str]]] = field(
        metadata={"help": "Informative 13-grams (words joined by spaces) -> the (split, id) pairs containing them."})
    short: dict[str, list[tuple[tuple[str, ...], frozenset[tuple[str, str]]]]] = field(
        metadata={"help": "Problems under 13 words, by first word: (their words, their (split, id) pairs)."})
    boilerplate: frozenset[str] = field(
        metadata={"help": "N-grams ignored: found in more than boilerplate_problems distinct problems."})
    problems: tuple[tuple[str, str, str], ...] = field(
        metadata={"help": "The (split, id, text) triples indexed, for measure()."})
    n: int = field(default=NGRAM, metadata={"help": "The n-gram length."})
    boilerplate_problems: int = field(default=BOILERPLATE_PROBLEMS, metadata={"help": "The boilerplate threshold."})

    def overlaps(self, words: list[str]) -> dict[str, set[tuple[str, str]]]:
        """The index's n-grams found in ``words``, each with the (split, id) pairs it points to."""
        found: dict[str, set[tuple[str, str]]] = {}
        for i, word in enumerate(words):
            if len(words) - i >= self.n and (gram := " ".join(words[i:i + self.n])) in self.ngrams:
                found.setdefault(gram, set()).update(self.ngrams[gram])
            for short_words, pairs in self.short.get(word, ()):
                if tuple(words[i:i + len(short_words)]) == short_words:
                    found.setdefault(" ".join(short_words), set()).update(pairs)
        return found


def _grams(words: tuple[str, ...], n: int) -> set[str]:
    return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}


def ngrams_of_problems(problems: Iterable[tuple[str, str, str]], n: int = NGRAM,
                       boilerplate_problems: int = BOILERPLATE_PROBLEMS) -> EvalNgrams:
    """The n-gram index of (split, id, problem text) triples. Problems are counted as distinct
    normalised texts, so a problem in two splits (MATH-500 and MATH level 5) counts once."""
    problems = tuple(problems)
    pairs_of_text: dict[tuple[str, ...], set[tuple[str, str]]] = {}
    for split, problem_id, text in problems:
        words = tuple(normalize(text))
        if words:
            pairs_of_text.setdefault(words, set()).add((split, problem_id))
    texts = list(pairs_of_text)
    gram_pairs: dict[str, set[tuple[str, str]]] = {}
    texts_with: Counter[str] = Counter()
    for words in texts:
        if len(words) >= n:
            for gram in _grams(words, n):
                gram_pairs.setdefault(gram, set()).update(pairs_of_text[words])
                texts_with[gram] += 1
    short_texts = {words: pairs_of_text[words] for words in texts if len(words) < n}
    by_first: dict[str, list[tuple[tuple[str, ...], frozenset[tuple[str, str]]]]] = {}
    for words, pairs in short_texts.items():
        by_first.setdefault(words[0], []).append((words, frozenset(pairs)))
    # A short problem's count is the number of distinct texts containing it.
    short_index = EvalNgrams({}, by_first, frozenset(), ())
    for words in texts:
        for gram in short_index.overlaps(list(words)):
            texts_with[gram] += 1
    boilerplate = frozenset(gram for gram, count in texts_with.items() if count > boilerplate_problems)
    ngrams = {gram: frozenset(pairs) for gram, pairs in gram_pairs.items() if gram not in boilerplate}
    short = {first: kept for first, entries in by_first.items()
             if (kept := [e for e in entries if " ".join(e[0]) not in boilerplate])}
    return EvalNgrams(ngrams, short, boilerplate, problems, n, boilerplate_problems)


@functools.lru_cache(maxsize=4)
def _cached_eval_ngrams(split_names: tuple[str, ...], n: int) -> EvalNgrams:
    triples = []
    for name in split_names:
        problems, _profile = load_split(name)
        triples.extend((name, p.id, p.problem) for p in problems)
    return ngrams_of_problems(triples, n)


def build_eval_ngrams(split_names: Iterable[str] | None = None, n: int = NGRAM) -> EvalNgrams:
    """The n-gram index of the evaluation problems (all of ``eval.splits.SPLITS`` by default).
    Cached per process: building it reads every split (about a second)."""
    names = tuple(sorted(SPLITS if split_names is None else split_names))
    unknown = [name for name in names if name not in SPLITS]
    if unknown:
        raise ValueError(f"unknown evaluation split(s) {unknown}; known: {sorted(SPLITS)}")
    return _cached_eval_ngrams(names, n)


def _match(rows: list[dict], eval_ngrams: EvalNgrams, text_key: str) -> list[dict | None]:
    """Per row, None when it is clean, else what it overlapped."""
    results = []
    for index, row in enumerate(rows):
        if text_key not in row:
            raise ValueError(f"decontaminate: row {row.get('id', index)!r} has no {text_key!r} key "
                             f"(keys: {sorted(row)})")
        found = eval_ngrams.overlaps(normalize(row[text_key]))
        if not found:
            results.append(None)
            continue
        hits = set().union(*found.values())
        results.append({
            "id": str(row.get("id", index)),
            "splits": sorted({split for split, _ in hits}),
            "eval_ids": sorted(f"{split}:{problem_id}" for split, problem_id in hits),
            "example_ngram": next(iter(found)),
        })
    return results


def decontaminate(rows: list[dict], eval_ngrams: EvalNgrams, text_key: str = "problem") -> tuple[list[dict], dict]:
    """The rows whose ``text_key`` shares no n-gram with the evaluation problems, and a report:
    the rule, counts, per dropped row its id, the overlapping splits and evaluation problem ids
    and one overlapping n-gram, and the rule's measured recall and false-positive rate."""
    matches = _match(rows, eval_ngrams, text_key)
    kept = [row for row, match in zip(rows, matches) if match is None]
    dropped = [match for match in matches if match is not None]
    report = {"ngram": eval_ngrams.n, "boilerplate_problems": eval_ngrams.boilerplate_problems,
              "ignored_boilerplate_ngrams": len(eval_ngrams.boilerplate), "text_key": text_key,
              "rows": len(rows), "kept": len(kept), "dropped": len(dropped), "dropped_rows": dropped,
              "measured": measure(eval_ngrams)}
    return kept, report


def clean_problem_ids(problems: list[tuple[str, str]], splits: list[str]) -> set[str]:
    """The ids of the ``(id, problem text)`` pairs that share no n-gram with the evaluation
    ``splits`` (all of them when ``splits`` is empty); a drop is logged. What ``train sample``
    and ``train select`` keep."""
    if not splits:
        return {pid for pid, _ in problems}
    kept, report = decontaminate([{"id": pid, "problem": text} for pid, text in problems], build_eval_ngrams(splits))
    if report["dropped"]:
        log.warning("decontamination dropped %d of %d problems (13-gram overlap with %s)", report["dropped"],
                    len(problems), sorted({s for r in report["dropped_rows"] for s in r["splits"]}))
    return {row["id"] for row in kept}


@functools.lru_cache(maxsize=8)
def _measure_cached(eval_ngrams: EvalNgrams, seed: int) -> dict:
    distinct = list({tuple(normalize(text)): (split, pid, text) for split, pid, text in eval_ngrams.problems}.values())

    def caught_by_edit(edit_set: dict) -> dict[str, tuple[int, int]]:
        copies = edits.edited_copies(distinct, edit_set, seed)
        counts: dict[str, list[int]] = {name: [0, 0] for name in edit_set}
        for row, match in zip(copies, _match(copies, eval_ngrams, "problem")):
            counts[row["edit"]][0] += match is not None
            counts[row["edit"]][1] += 1
        return {name: (caught, total) for name, (caught, total) in counts.items()}

    same, different = caught_by_edit(edits.SAME_PROBLEM), caught_by_edit(edits.DIFFERENT_PROBLEM)
    caught, total = sum(c for c, _ in same.values()), sum(t for _, t in same.values())
    clean = [row for _, row in iter_rows(CLEAN_ROWS) if row["id"] not in KNOWN_NEAR_DUPLICATES]
    clean += [{"id": f"boilerplate-{i}", "problem": text} for i, text in enumerate(edits.BOILERPLATE_ROWS)]
    false_positives = [match["id"] for match in _match(clean, eval_ngrams, "problem") if match is not None]
    return {
        "seed": seed, "problems": len(distinct),
        "recall_same_problem": round(caught / total, 4), "edited_copies": total,
        "recall_by_edit": {name: round(c / t, 4) if t else None for name, (c, t) in same.items()},
        "dropped_different_problem": {name: round(c / t, 4) if t else None for name, (c, t) in different.items()},
        "false_positive_rate": round(len(false_positives) / len(clean), 4), "clean_rows": len(clean),
        "clean_source": f"{CLEAN_ROWS.name} (less {sorted(KNOWN_NEAR_DUPLICATES)}: true near-duplicates) "
                        f"and {len(edits.BOILERPLATE_ROWS)} unrelated problems in evaluation phrasing",
        "false_positive_ids": false_positives,
    }


def measure(eval_ngrams: EvalNgrams, seed: int = 0) -> dict:
    """Recall on edited copies of the indexed problems (one copy per problem and edit of
    ``train.decontamination_edits``; only the same-problem edits count), the share of
    different-problem copies dropped anyway, and the false-positive rate on clean training
    problems. Cached per index."""
    return _measure_cached(eval_ngrams, seed)


def write_report(report: dict, path: str | Path) -> Path:
    """Write a decontamination report as indented JSON (parent folders are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def make_parser(subparsers: argparse._SubParsersAction | None = None) -> argparse.ArgumentParser:
    """The step's own parser, or its subcommand of ``python -m train`` (train/__main__.py)."""
    description = ("Print the decontamination rule's recall on edited copies of the evaluation problems and its "
                   "false-positive rate on clean rows.")
    parser = (subparsers.add_parser("measure-decontamination", help="measure the decontamination rule",
                                    description=description)
              if subparsers is not None else
              argparse.ArgumentParser(prog="python -m train measure-decontamination", description=description))
    parser.add_argument("--against", nargs="+", default=sorted(SPLITS), help="Evaluation splits (default: all).")
    parser.add_argument("--clean", nargs="*", default=[], help="More training problem files (a problem column): "
                        "their drop rate and dropped rows are printed, to check by hand.")
    parser.add_argument("--thresholds", nargs="*", type=int, default=[],
                        help="Also measure with these boilerplate thresholds (the choice of BOILERPLATE_PROBLEMS).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the edited copies.")
    return parser


def main(args: argparse.Namespace) -> None:
    index = build_eval_ngrams(args.against)
    print(json.dumps(measure(index, args.seed), indent=2))
    for threshold in args.thresholds:
        figures = measure(ngrams_of_problems(index.problems, boilerplate_problems=threshold), args.seed)
        print(f"boilerplate threshold {threshold}: recall {figures['recall_same_problem']}, changed numbers dropped "
              f"{figures['dropped_different_problem']}, false positives {figures['false_positive_rate']} "
              f"{figures['false_positive_ids']}")
    for path in args.clean:
        rows = [row for _, row in iter_rows(Path(path))]
        dropped = [match for match in _match(rows, index, "problem") if match is not None]
        print(f"{path}: {len(dropped)} of {len(rows)} rows dropped ({len(dropped) / max(len(rows), 1):.4f})")
        for match in dropped:
            print(f"  {match['id']} ~ {', '.join(match['eval_ids'][:3])}: {match['example_ngram']!r}")


if __name__ == "__main__":
    main(make_parser().parse_args())
