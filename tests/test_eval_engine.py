"""One evaluation run on the embedded model with the real vLLM engine, through the CLI (N=8
samples over 3 GSM8K problems, logprobs on so the entropy votes have their signal), read by what
reads saved runs: every report file is written, plots included, and the numbers add up; ``eval
select`` writes its report; ``train select`` turns the run into training sets that agree with
its grades. One engine start for the module."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from eval.report import PLOTS
from eval.selection.report import PLOTS as SELECTION_PLOTS

pytestmark = [pytest.mark.engine, pytest.mark.slow]
REPO = Path(__file__).resolve().parent.parent
PROBLEMS, N = 3, 8


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("engine") / "run"
    cmd = [sys.executable, "-m", "eval", "run", "--split", "gsm8k", "--limit", str(PROBLEMS), "--config", "cpu-smol",
           "--num-samples", str(N), "--max-new-tokens", "128", "--logprobs", "5", "--problem-time-s", "90",
           "--out", str(run)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run, proc


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_eval_run_on_the_embedded_model_writes_the_whole_report(real_run):
    out, proc = real_run
    for name in ("config.yaml", "problems.jsonl", "samples.jsonl", "summary.json", "report.md", *PLOTS):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["problems"] == PROBLEMS and summary["samples_per_problem"] == N
    problems = lines(out / "problems.jsonl")
    assert summary["accuracy"] == sum(p["correct"] for p in problems) / PROBLEMS
    samples = lines(out / "samples.jsonl")
    assert len(samples) == PROBLEMS * N and all(s["generated_tokens"] > 0 for s in samples)
    assert "accuracy" in proc.stdout


def test_select_on_a_real_run_of_the_embedded_model_writes_the_report(real_run):
    run, _ = real_run
    select = [sys.executable, "-m", "eval", "select", str(run), "--sim-runs", "20"]
    proc = subprocess.run(select, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = run / "selection"
    for name in ("selection.md", "selection.json", *SELECTION_PLOTS):
        assert (out / name).stat().st_size > 0, name
    analysis = json.loads((out / "selection.json").read_text())
    assert analysis["problems"] == PROBLEMS and analysis["samples_per_problem"] == {"min": N, "max": N}
    assert analysis["ks"] == [1, 2, 4, 8]
    assert {"majority", "entropy", "combined", "shortest"} <= set(analysis["accuracy"])
    ceiling = analysis["accuracy"]["pass@k"]
    for name, curve in analysis["accuracy"].items():  # every subset enumerated (C(8, 4) = 70): exact
        for k, point in curve.items():
            assert point["low"] <= point["accuracy"] <= point["high"]
            assert point["accuracy"] <= ceiling[k]["accuracy"] + 1e-9, (name, k)
    assert analysis["simulation"]["runs"] == 20 and analysis["early_stop"]["rows"]
    assert "report:" in proc.stdout


def test_train_select_turns_a_real_run_into_training_sets_that_agree_with_its_grades(real_run, tmp_path):
    run, _ = real_run
    # The run's GSM8K test problems are evaluation problems: against gsm8k decontamination would
    # rightly drop them all, so here it checks them against AIME only.
    cmd = [sys.executable, "-m", "train", "select", "--samples", str(run), "--output_dir", str(tmp_path),
           "--decontaminate_against", "aime"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["problems_sampled"] == PROBLEMS and report["problems_decontaminated"] == 0
    assert report["candidates"] == PROBLEMS * N
    graded = {(s["problem_id"], s["text"]): s["correct"] for s in lines(run / "samples.jsonl")}
    for row in lines(tmp_path / "kto.jsonl"):
        assert graded[(row["problem_id"], row["completion"][0]["content"])] == row["label"]
    assert all(graded[(r["problem_id"], r["completion"][0]["content"])] for r in lines(tmp_path / "rft.jsonl"))
    print(f"train select on the embedded model's run: {report['rows']}, "
          f"{[p['distinct_sampled_paths'] for p in report['per_problem']]} distinct sampled paths per problem")
