"""Scale-out's configuration path: KTO sampling through vLLM's data-parallel setting, with
one replica on CPU (the embedded model), several problems in flight, through the command line
a cluster run uses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.engine

REPO = Path(__file__).resolve().parent.parent


def test_kto_sampling_runs_on_one_data_parallel_replica(tmp_path):
    kit_config = yaml.safe_load((REPO / "kit" / "configs" / "cpu-smol.yaml").read_text())
    kit_config.update(data_parallel_size=1, max_new_tokens=48, max_code_rounds=1)
    (tmp_path / "dp1.yaml").write_text(yaml.safe_dump(kit_config))
    out = tmp_path / "kto.jsonl"
    kit = {"config": str(tmp_path / "dp1.yaml"), "model": "", "num_samples": 2, "problem_time_s": 120}
    cmd = [sys.executable, "-m", "train", "kto-data", "--problems", "train/data/gsm8k_train_slice.jsonl",
           "--output", str(out), "--kit", json.dumps(kit), "--limit", "3", "--problems_in_flight", "3",
           "--decontaminate_against", "gsm8k"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["problem_id"] for r in rows} and len(rows) <= 6
    assert all(r["completion"][0]["content"] for r in rows)
