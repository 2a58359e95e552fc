"""``python -m eval select`` on a real evaluation run of the embedded model (vLLM on CPU): N=8
samples over 3 GSM8K problems, logprobs on so the entropy votes have their signal; the report,
its plots and selection.json are written and the numbers hold together."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from eval.selection.report import PLOTS

pytestmark = [pytest.mark.engine, pytest.mark.slow]
REPO = Path(__file__).resolve().parent.parent


def test_select_on_a_real_run_of_the_embedded_model_writes_the_report(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "eval", "run", "--split", "gsm8k", "--limit", "3", "--config", "cpu-smol",
           "--num-samples", "8", "--max-new-tokens", "128", "--logprobs", "5", "--problem-time-s", "90",
           "--out", str(run)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    select = [sys.executable, "-m", "eval", "select", str(run), "--sim-runs", "20"]
    proc = subprocess.run(select, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = run / "selection"
    for name in ("selection.md", "selection.json", *PLOTS):
        assert (out / name).stat().st_size > 0, name
    analysis = json.loads((out / "selection.json").read_text())
    assert analysis["problems"] == 3 and analysis["samples_per_problem"] == {"min": 8, "max": 8}
    assert analysis["ks"] == [1, 2, 4, 8]
    assert {"majority", "entropy", "combined", "shortest"} <= set(analysis["accuracy"])
    ceiling = analysis["accuracy"]["pass@k"]
    for name, curve in analysis["accuracy"].items():  # every subset enumerated (C(8, 4) = 70): exact
        for k, point in curve.items():
            assert point["low"] <= point["accuracy"] <= point["high"]
            assert point["accuracy"] <= ceiling[k]["accuracy"] + 1e-9, (name, k)
    assert analysis["simulation"]["runs"] == 20 and analysis["early_stop"]["rows"]
    assert "report:" in proc.stdout
