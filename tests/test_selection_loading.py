"""Loading the selection lab's samples: eval run directories (made here by the runner with a
scripted engine), pooled per problem only when their sampling settings agree, and plain samples
tables in JSONL, CSV and Parquet (eval/selection/loading.py, eval/selection/tables.py)."""

from __future__ import annotations

import dataclasses
import json

import polars as pl
import pytest
import yaml

from eval.runner import run_split
from eval.selection.loading import code_ok, load_runs, load_samples
from eval.splits import EvalProblem
from kit.config import KitConfig
from kit.solver import Solver
from scripted_engine import AnswerBook

PROBLEMS = [EvalProblem(f"p{i}", f"What is {i} + {i}?", str(2 * i)) for i in range(3)]
CFG = KitConfig(num_samples=3, max_code_rounds=1, early_stop=[], profile="integer")


def make_run(out, seeds=(0,), cfg=CFG):
    run_split("toy", PROBLEMS, cfg, list(seeds), out, "scripted", lambda c: Solver(c, engine=AnswerBook()))
    return out


def test_a_run_directory_gives_each_problem_its_graded_samples(tmp_path):
    problems = load_runs([make_run(tmp_path / "run")])
    assert [p.problem_id for p in problems] == ["p0", "p1", "p2"]
    odd = problems[1]
    # AnswerBook: candidate 0 is right everywhere, the others only on even problems.
    assert odd.gold == "2" and odd.split == "toy"
    assert [(s.answer, s.correct) for s in odd.samples] == [("2", True), ("3", False), ("3", False)]
    assert all(s.tokens > 0 and s.finish_s is not None and s.code_ok is None for s in odd.samples)
    assert odd.elapsed_s is not None and odd.elapsed_s >= max(s.finish_s for s in odd.samples)


def test_code_ok_needs_every_cell_clean():
    clean = {"error": None, "timed_out": False}
    assert code_ok([]) is None
    assert code_ok([clean, clean]) is True
    assert code_ok([clean, {"error": "NameError", "timed_out": False}]) is False
    assert code_ok([{"error": None, "timed_out": True}]) is False


def test_seeds_and_runs_with_the_same_settings_are_pooled_per_problem(tmp_path):
    one = make_run(tmp_path / "seeds01", seeds=(0, 1))
    two = make_run(tmp_path / "seed2", seeds=(2,))
    loaded = load_samples([one, two])
    assert len(loaded.problems) == 3
    for p in loaded.problems:
        assert len(p.samples) == 9
        assert [s.order for s in p.samples] == list(range(9))  # renumbered over the draws
    assert loaded.pooled() == {"toy": [str(one), str(two)]}
    assert [s.seeds for s in loaded.sources] == [(0, 1), (2,)]


def test_pooling_refuses_runs_whose_sampling_settings_differ(tmp_path):
    base = make_run(tmp_path / "base")
    hotter = make_run(tmp_path / "hotter", seeds=(1,), cfg=dataclasses.replace(CFG, temperature=1.2, top_p=0.9))
    with pytest.raises(ValueError, match=r"differ in \['temperature', 'top_p'\].*0.8 vs 1.2"):
        load_samples([base, hotter])
    # A setting that changes no sample (the early-stop rules, replayed anyway) does not stop pooling.
    other_rules = make_run(tmp_path / "rules", seeds=(1,), cfg=dataclasses.replace(CFG, early_stop=[]))
    assert len(load_samples([base, other_rules]).problems[0].samples) == 6


def test_pooling_refuses_the_same_draw_twice(tmp_path):
    with pytest.raises(ValueError, match="both hold seed 0 of problem 'p0'"):
        load_samples([make_run(tmp_path / "a"), make_run(tmp_path / "b")])
    with pytest.raises(ValueError, match="given twice"):
        load_samples([tmp_path / "a", tmp_path / "a"])


def test_runs_made_with_early_stop_on_are_refused(tmp_path):
    run = make_run(tmp_path / "old")
    config = yaml.safe_load((run / "config.yaml").read_text())
    (run / "config.yaml").write_text(yaml.safe_dump({**config, "record_format": 1}))
    with pytest.raises(ValueError, match="record_format 1"):
        load_runs([run])
    with pytest.raises(FileNotFoundError, match="no config.yaml"):
        load_runs([tmp_path])


ROWS = [
    # problem a: gold 12; graded rows without a verdict; a reward score column, a text column ignored.
    {"problem_id": "a", "gold": "12", "answer": "12", "order": 0, "tokens": 300, "finish_s": 4.5, "entropy": 0.25,
     "tail_entropy": 0.5, "code_ok": True, "reward": 1.25, "note": "x"},
    {"problem_id": "a", "gold": "12", "answer": "13", "order": 1, "tokens": 800, "finish_s": 9.0, "entropy": 0.75,
     "tail_entropy": 1.0, "code_ok": False, "reward": -0.5, "note": "y"},
    {"problem_id": "a", "gold": "12", "answer": None, "order": 2, "tokens": 900, "finish_s": 12.0, "entropy": None,
     "tail_entropy": None, "code_ok": None, "reward": None, "note": None},
    # problem b: its own verdicts (gold written as a number in JSON), rows out of order.
    {"problem_id": "b", "gold": "7", "answer": "7", "correct": True, "order": 1, "tokens": 50, "finish_s": 1.0},
    {"problem_id": "b", "gold": "7", "answer": "9", "correct": False, "order": 0, "tokens": 70, "finish_s": 2.0},
]


def write_table(path, rows, fmt):
    frame = pl.DataFrame(rows, infer_schema_length=None)
    if fmt == "jsonl":
        path.write_text("".join(json.dumps({**r, "gold": int(r["gold"])}) + "\n" for r in rows))
    elif fmt == "csv":
        frame.write_csv(path)
    else:
        frame.write_parquet(path)


def test_a_plain_table_gives_the_same_samples_in_jsonl_csv_and_parquet(tmp_path):
    loaded = {}
    for fmt in ("jsonl", "csv", "parquet"):
        (tmp_path / fmt).mkdir()
        path = tmp_path / fmt / f"samples.{fmt}"
        write_table(path, ROWS, fmt)
        loaded[fmt] = load_samples([], [path]).problems
    assert loaded["jsonl"] == loaded["csv"] == loaded["parquet"]
    a, b = loaded["parquet"]
    assert (a.problem_id, a.gold, a.split) == ("a", "12", "samples")
    first = a.samples[0]
    assert (first.answer, first.correct, first.tokens, first.finish_s, first.mean_entropy, first.tail_entropy,
            first.code_ok, first.scores) == ("12", True, 300, 4.5, 0.25, 0.5, True, {"reward": 1.25})
    assert [(s.answer, s.correct, s.scores) for s in a.samples[1:]] == [("13", False, {"reward": -0.5}),
                                                                      (None, False, {})]
    assert [(s.answer, s.order) for s in b.samples] == [("9", 0), ("7", 1)]


def test_answers_without_a_verdict_are_graded_by_the_grader(tmp_path):
    path = tmp_path / "free.jsonl"
    rows = [{"problem_id": "q", "gold": "0.5", "answer": "\\frac{1}{2}"},
            {"problem_id": "q", "gold": "0.5", "answer": "2"},
            {"problem_id": "q", "gold": "0.5", "answer": "1/3", "correct": True},  # a given verdict is kept
            {"problem_id": "q", "gold": "0.5", "answer": "", "correct": True}]  # ... unless there is no answer
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (problem,) = load_samples([], [path]).problems
    assert [s.correct for s in problem.samples] == [True, False, True, False]


@pytest.mark.parametrize("rows,message", [
    ([{"problem_id": "a", "answer": "1"}], r"lacks column\(s\) \['gold'\]"),
    ([{"problem_id": "a", "gold": "1", "answer": "1"}, {"problem_id": "a", "gold": "2", "answer": "1"}],
     "different gold answers"),
    ([{"problem_id": "a", "gold": "1", "answer": "1", "correct": "yes"}], "correct must be true/false"),
    ([{"problem_id": "a", "gold": "1", "answer": "1", "order": 0},
      {"problem_id": "a", "gold": "1", "answer": "2", "order": 0}],
     r"same \(seed, order\)"),
    ([{"problem_id": None, "gold": "1", "answer": "1"}], "row 0 has no problem_id"),
])
def test_a_malformed_table_is_refused_naming_what_is_wrong(tmp_path, rows, message):
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match=message):
        load_samples([], [path])


def test_a_table_is_never_pooled_with_a_run(tmp_path):
    run = make_run(tmp_path / "run")
    path = tmp_path / "toy.jsonl"
    path.write_text(json.dumps({"problem_id": "p0", "gold": "0", "answer": "0", "split": "toy"}) + "\n")
    with pytest.raises(ValueError, match="no sampling settings"):
        load_samples([run], [path])
