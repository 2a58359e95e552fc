"""The evaluation runner with a scripted engine: run directory contents, resume after a
kill, refusal to mix runs, and compare. (The real engine runs in test_eval_engine.py.)"""

from __future__ import annotations

import json

import pytest

from eval import runs, runner
from eval.compare import compare_runs
from eval.report import PLOTS
from eval.runner import run_split
from eval.splits import EvalProblem
from kit.answers import get_profile
from kit.config import KitConfig
from kit.sctir import Candidate
from kit.solver import Solver
from scripted_engine import AnswerBook, ScriptedEngine

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


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def fast_and_slow(answers: list[str], fast: int) -> ScriptedEngine:
    """Candidate i answers answers[i]; the first ``fast`` finish at once, the rest 0.5 s later."""
    return ScriptedEngine(lambda c, s: f"So \\boxed{{{answers[c]}}}.", delay_s=lambda c, s: 0.0 if c < fast else 0.5)


def test_early_stopped_candidates_are_not_counted_as_wrong_samples(tmp_path):
    # 8 candidates all right, 4 finishing before a 4/4 stop: the stop cancels no sample of the curves.
    cfg = KitConfig(num_samples=8, max_code_rounds=1, early_stop=["4/4"], profile="integer")
    problem = EvalProblem("q", "What is 3 + 3?", "6")
    summary = run_split("toy", [problem], cfg, [0], tmp_path, "scripted",
                        lambda c: Solver(c, engine=fast_and_slow(["6"] * 8, fast=4)))
    assert summary["accuracy"] == 1.0
    assert summary["curves"]["pass@k"][1] == 1.0 and summary["curves"]["maj@k"][1] == 1.0
    assert summary["early_stop_rate"] == 1.0 and summary["cancelled_candidates"] == 0
    (record,) = lines(tmp_path / "problems.jsonl")
    assert record["stop_reason"] == "early_stop:4/4" and record["full_vote_stop_reason"] == "all_finished"
    assert "early stop" in (tmp_path / "report.md").read_text()


def test_the_replayed_early_stop_answers_what_the_kit_with_early_stop_answers(tmp_path):
    # Four fast candidates say 5, five slow ones 7 (right): 4/4 stops on 5, the full vote is 7.
    answers = ["5"] * 4 + ["7"] * 5
    cfg = KitConfig(num_samples=9, max_code_rounds=1, early_stop=["4/4"], profile="integer")
    problem = EvalProblem("q", "Which?", "7")
    summary = run_split("toy", [problem], cfg, [0], tmp_path, "scripted",
                        lambda c: Solver(c, engine=fast_and_slow(answers, fast=4)))
    (record,) = lines(tmp_path / "problems.jsonl")
    with Solver(cfg, engine=fast_and_slow(answers, fast=4)) as solver:
        as_run = solver.solve(problem.problem, problem.id)
    assert (record["answer"], record["votes"], record["stop_reason"]) == (as_run.answer, as_run.vote.table,
                                                                          as_run.stop_reason) == ("5", {"5": 4},
                                                                                                  "early_stop:4/4")
    assert record["correct"] is False and record["full_vote"]["answer"] == "7" and record["full_vote"]["correct"]
    assert (record["vote_method"], record["vote_weights"], record["full_vote"]["vote_weights"]) == \
        ("majority", {"5": 4.0}, {"7": 5.0, "5": 4.0})
    assert summary["accuracy"] == 0.0 and summary["accuracy_full_vote"] == 1.0
    assert summary["curves"]["pass@k"][1] == pytest.approx(5 / 9)


def test_the_submitted_answer_is_graded_and_the_boxed_text_kept(tmp_path):
    # aimo2 submits 1234 mod 1000 = 234: right against gold 234.
    cfg = KitConfig(num_samples=2, max_code_rounds=1, early_stop=[], profile="aimo2")
    summary = run_split("toy", [EvalProblem("q", "Which?", "234")], cfg, [0], tmp_path, "scripted",
                        lambda c: Solver(c, engine=fast_and_slow(["1234", "1234"], fast=2)))
    assert summary["accuracy"] == 1.0 and summary["curves"]["pass@k"][1] == 1.0
    sample = lines(tmp_path / "samples.jsonl")[0]
    assert (sample["boxed"], sample["answer"], sample["graded"], sample["correct"]) == ("1234", "234", "234", True)


def test_free_form_answers_are_graded_as_written():
    # The free profile's normalization is a vote key ("5cm"), not what the grader should judge.
    c = Candidate(0, status="answered", boxed="5\\text{ cm}", answer="5cm", answer_source="boxed")
    assert c.graded_answer(get_profile("free")) == "5\\text{ cm}"
    assert c.graded_answer(get_profile("integer")) == "5cm"
    assert Candidate(1, status="pruned", boxed="5").graded_answer(get_profile("free")) is None


def test_a_failure_while_samples_are_rewritten_on_resume_loses_nothing(tmp_path, monkeypatch):
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, AnswerBook(kill_at="p3"))
    before = (tmp_path / "samples.jsonl").read_text()

    def disk_full_after_two(records):
        for i, line in enumerate(runs.json_lines(records)):
            if i == 2:
                raise OSError(28, "No space left on device")
            yield line

    monkeypatch.setattr(runner, "json_lines", disk_full_after_two)
    with pytest.raises(OSError, match="No space"):
        run(tmp_path, AnswerBook(), resume=True)
    assert (tmp_path / "samples.jsonl").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "problems.jsonl", "samples.jsonl"]
    monkeypatch.undo()
    second = AnswerBook()
    summary = run(tmp_path, second, resume=True)
    assert second.solved == {"p3", "p4", "p5"} and summary["problems"] == 6
    assert len(lines(tmp_path / "samples.jsonl")) == 18
