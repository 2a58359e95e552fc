"""``python -m eval select`` end to end: on a samples table and on run directories (made by the
runner with a scripted engine), the report, its plots and selection.json are written, and bad
input is refused with a clear error (eval/selection/cli.py, lab.py, report.py)."""

from __future__ import annotations

import dataclasses
import json
import random

import pytest

from eval.__main__ import main
from eval.runner import run_split
from eval.selection.report import PLOTS
from eval.splits import EvalProblem
from kit.config import KitConfig
from kit.solver import Solver
from scripted_engine import AnswerBook

FAST = ["--resamples", "200", "--sim-runs", "10", "--workers", "1"]


def write_table(path, problems=8, samples=8, finish=True):
    rng = random.Random(0)
    rows = []
    for p in range(problems):
        for i in range(samples):
            right = rng.random() < 0.6
            row = {"problem_id": f"q{p}", "gold": str(p), "answer": str(p if right else p + rng.choice([1, 2])),
                   "tokens": rng.randint(100, 900), "entropy": rng.uniform(0.1, 0.9),
                   "tail_entropy": rng.uniform(0.1, 0.9), "code_ok": rng.random() < 0.5, "reward": rng.gauss(0, 1)}
            if finish:
                row["finish_s"] = round(row["tokens"] / 30, 2)
            rows.append(row)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_select_on_a_table_writes_the_report_its_plots_and_the_json(tmp_path, capsys):
    table = write_table(tmp_path / "rehearsal.jsonl")
    out = tmp_path / "out"
    assert main(["select", "--table", str(table), "--out", str(out), *FAST]) == 0
    for name in ("selection.md", "selection.json", *PLOTS):
        assert (out / name).stat().st_size > 0, name
    analysis = json.loads((out / "selection.json").read_text())
    assert analysis["ks"] == [1, 2, 4, 8] and analysis["problems"] == 8
    assert set(analysis["accuracy"]) == {"majority", "entropy", "combined", "shortest", "code-verified",
                                         "reward:best", "reward:sum", "pass@k"}
    assert {"rows"} == set(analysis["early_stop"]) and analysis["simulation"]["runs"] == 10
    # The simulation's default limit: Kaggle's 5 h over 50 problems, scaled to these 8.
    assert analysis["simulation"]["time_limit_s"] == pytest.approx(8 * 360)
    report = (out / "selection.md").read_text()
    assert all(f"({name})" in report for name in PLOTS)
    assert "| table | rehearsal | - | 8 | 64 |" in report and "| reward:best | all |" in report
    # The competition tables' k: below the 8 samples, where two runs can draw different candidates.
    assert analysis["score_k"] == 4 and "best at k=4" in capsys.readouterr().out


def test_methods_and_k_can_be_chosen(tmp_path):
    table = write_table(tmp_path / "t.jsonl")
    out = tmp_path / "out"
    assert main(["select", "--table", str(table), "--out", str(out), "--methods", "majority", "shortest",
                 "--k", "1", "3", "--vote", "reward:best", *FAST]) == 0
    analysis = json.loads((out / "selection.json").read_text())
    assert set(analysis["accuracy"]) == {"majority", "shortest", "pass@k"} and analysis["ks"] == [1, 3]
    assert analysis["simulation"]["vote"] == "rm"


def test_samples_without_finish_times_skip_early_stop_and_simulation_and_say_why(tmp_path):
    out = tmp_path / "out"
    assert main(["select", "--table", str(write_table(tmp_path / "no_finish.jsonl", finish=False)), "--out", str(out),
                 *FAST]) == 0
    report = (out / "selection.md").read_text()
    assert "Not replayed: 64 samples have no finish time" in report and "Not simulated" in report
    assert not (out / "early_stop.png").exists()


PROBLEMS = [EvalProblem(f"p{i}", f"What is {i} + {i}?", str(2 * i)) for i in range(4)]
CFG = KitConfig(num_samples=4, max_code_rounds=1, early_stop=[], profile="integer")


def make_run(out, seeds, cfg=CFG):
    run_split("toy", PROBLEMS, cfg, seeds, out, "scripted", lambda c: Solver(c, engine=AnswerBook()))
    return out


def test_select_on_runs_pools_them_and_writes_into_the_first_run(tmp_path):
    first, second = make_run(tmp_path / "a", [0]), make_run(tmp_path / "b", [1, 2])
    assert main(["select", str(first), str(second), *FAST]) == 0
    analysis = json.loads((first / "selection" / "selection.json").read_text())
    assert analysis["samples_per_problem"] == {"min": 12, "max": 12} and analysis["ks"] == [1, 2, 4, 8, 12]
    # AnswerBook: candidate 0 right on odd problems, the others wrong and agreeing; all right on even ones.
    majority = analysis["accuracy"]["majority"]
    assert majority[str(12)]["accuracy"] == 0.5 and analysis["accuracy"]["pass@k"]["12"]["accuracy"] == 1.0
    assert analysis["simulation"]["num_samples"] == 4 and analysis["score_k"] == 4  # the runs' N, not the pooled 12
    report = (first / "selection" / "selection.md").read_text()
    assert "samples of 2 sources pooled per problem" in report
    assert "Each (seed, problem) of a run is a separate draw" in report


def test_runs_with_other_sampling_settings_are_refused_naming_them(tmp_path, capsys):
    first = make_run(tmp_path / "a", [0])
    other = make_run(tmp_path / "b", [1], dataclasses.replace(CFG, max_new_tokens=99))
    assert main(["select", str(first), str(other), *FAST]) == 2
    assert "differ in ['max_new_tokens']" in capsys.readouterr().err


def test_nothing_to_read_and_unknown_methods_are_errors(tmp_path, capsys):
    assert main(["select"]) == 2
    assert "at least one run directory or --table" in capsys.readouterr().err
    table = write_table(tmp_path / "t.jsonl")
    assert main(["select", "--table", str(table), "--methods", "oracle", "--out", str(tmp_path / "o"), *FAST]) == 2
    assert "'oracle' unknown" in capsys.readouterr().err


def test_a_vote_whose_signal_the_samples_lack_is_refused_before_the_replay(tmp_path, capsys):
    table = tmp_path / "plain.jsonl"
    table.write_text("".join(json.dumps({"problem_id": "q", "gold": "1", "answer": a, "finish_s": t}) + "\n"
                             for t, a in enumerate("1121")))
    assert main(["select", "--table", str(table), "--vote", "entropy", "--out", str(tmp_path / "o"), *FAST]) == 2
    assert "--vote entropy: 4 of 4 answered samples lack its signal" in capsys.readouterr().err
