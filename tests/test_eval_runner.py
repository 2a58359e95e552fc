"""The evaluation runner with a scripted engine: run directory contents, resume after a
kill, refusal to mix runs, and compare. (The real engine runs in test_eval_engine.py.)"""

from __future__ import annotations

import json

import pytest

from eval.compare import compare_runs
from eval.report import PLOTS
from eval.runner import run_split
from eval.splits import EvalProblem
from kit.config import KitConfig
from kit.solver import Solver
from scripted_engine import AnswerBook

PROBLEMS = [EvalProblem(f"p{i}", f"What is {i} + {i}?", str(2 * i), level=str(1 + i % 2), subject="Algebra")
            for i in range(6)]
CFG = KitConfig(num_samples=3, max_code_rounds=1, early_stop=[], profile="integer")


def run(out, engine, **kwargs):
    return run_split("toy", PROBLEMS, CFG, [0], out, "scripted", lambda cfg: Solver(cfg, engine=engine), **kwargs)


def test_run_writes_every_file_and_the_right_accuracy(tmp_path):
    summary = run(tmp_path, AnswerBook())
    # Even problems: 3/3 right; odd: 1 right vs 2 agreeing wrong -> the vote is wrong.
    assert summary["accuracy"] == pytest.approx(0.5)
    assert summary["curves"]["pass@k"][3] == pytest.approx(1.0)
    for name in ("config.yaml", "problems.jsonl", "samples.jsonl", "summary.json", "report.md", *PLOTS):
        assert (tmp_path / name).stat().st_size > 0, name
    samples = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 18 and {"text", "cells", "answer", "correct", "generated_tokens", "reason"} <= set(samples[0])
    report = (tmp_path / "report.md").read_text()
    assert all(f"({name})" in report for name in PLOTS)


def test_resume_after_a_kill_solves_only_what_is_left(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, AnswerBook(kill_at="p3"))
    assert len((tmp_path / "problems.jsonl").read_text().splitlines()) == 3
    # A half-written line, as a kill during a write leaves it.
    with (tmp_path / "problems.jsonl").open("a") as f:
        f.write('{"seed": 0, "problem_id": "p3", "ans')
    second = AnswerBook()
    summary = run(tmp_path, second, resume=True)
    assert second.solved == {"p3", "p4", "p5"}
    records = [json.loads(line) for line in (tmp_path / "problems.jsonl").read_text().splitlines()]
    assert sorted(r["problem_id"] for r in records) == [p.id for p in PROBLEMS]
    assert summary["problems"] == 6 and summary["accuracy"] == pytest.approx(0.5)


def test_an_existing_run_is_not_silently_mixed_into(tmp_path):
    run(tmp_path, AnswerBook())
    with pytest.raises(ValueError, match="--resume"):
        run(tmp_path, AnswerBook())
    other = KitConfig(num_samples=5, max_code_rounds=1, early_stop=[], profile="integer")
    with pytest.raises(ValueError, match="num_samples"):
        run_split("toy", PROBLEMS, other, [0], tmp_path, "scripted",
                  lambda cfg: Solver(cfg, engine=AnswerBook()), resume=True)
    summary = run_split("toy", PROBLEMS, other, [0], tmp_path, "scripted",
                        lambda cfg: Solver(cfg, engine=AnswerBook()), force=True)
    assert summary["samples_per_problem"] == 5


def test_several_seeds_give_a_spread(tmp_path):
    summary = run_split("toy", PROBLEMS, CFG, [1, 2], tmp_path, "scripted", lambda cfg: Solver(cfg, engine=AnswerBook()))
    assert summary["seeds"] == [1, 2] and summary["problems"] == 12
    assert summary["accuracy_seed_std"] == 0.0


def test_compare_lists_per_problem_flips(tmp_path):
    run(tmp_path / "a", AnswerBook())
    right_everywhere = KitConfig(num_samples=1, max_code_rounds=1, early_stop=[], profile="integer")
    run_split("toy", PROBLEMS, right_everywhere, [0], tmp_path / "b", "scripted",
              lambda cfg: Solver(cfg, engine=AnswerBook()))
    problems_a = tmp_path / "a" / "problems.jsonl"
    with problems_a.open("a") as f:
        f.write('{"seed": 0, "problem_id": "p9", "ans')  # a run being written right now
    before = problems_a.read_text()
    text = compare_runs(tmp_path / "a", tmp_path / "b")
    assert problems_a.read_text() == before  # comparing reads; it never edits a run
    assert "right in B only (3): p1, p3, p5" in text
    assert "right in A only (0)" in text
