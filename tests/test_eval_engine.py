"""One evaluation run on the embedded model with the real vLLM engine, through the CLI:
every report file is written, plots included, and the numbers add up."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from eval.report import PLOTS

pytestmark = pytest.mark.engine
REPO = Path(__file__).resolve().parent.parent


def test_eval_run_on_the_embedded_model_writes_the_whole_report(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "eval", "run", "--split", "gsm8k", "--limit", "2", "--config", "cpu-smol",
           "--num-samples", "4", "--max-new-tokens", "160", "--problem-time-s", "60", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("config.yaml", "problems.jsonl", "samples.jsonl", "summary.json", "report.md", *PLOTS):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["problems"] == 2 and summary["samples_per_problem"] == 4
    problems = [json.loads(line) for line in (out / "problems.jsonl").read_text().splitlines()]
    assert summary["accuracy"] == sum(p["correct"] for p in problems) / 2
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 8 and all(s["generated_tokens"] > 0 for s in samples)
    assert "accuracy" in proc.stdout
