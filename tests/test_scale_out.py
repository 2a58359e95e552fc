"""Scale-out's configuration path: ``train sample`` through vLLM's data-parallel setting, with
one replica on CPU (the embedded model), several problems in flight and a shard of the problem
set, through the command line a cluster job uses; the sample directory it writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.engine

REPO = Path(__file__).resolve().parent.parent


def test_sampling_runs_on_one_data_parallel_replica_with_problems_in_flight(tmp_path):
    kit_config = yaml.safe_load((REPO / "kit" / "configs" / "cpu-smol.yaml").read_text())
    kit_config.update(data_parallel_size=1, max_new_tokens=48, max_code_rounds=1)
    (tmp_path / "dp1.yaml").write_text(yaml.safe_dump(kit_config))
    out = tmp_path / "samples"
    kit = {"config": str(tmp_path / "dp1.yaml"), "model": "", "num_samples": 2, "problem_time_s": 120}
    cmd = [sys.executable, "-m", "train", "sample", "--problems", "train/data/gsm8k_train_slice.jsonl",
           "--output_dir", str(out), "--kit", json.dumps(kit), "--limit", "3", "--problems_in_flight", "3",
           "--shard", "0/1", "--decontaminate_against", "gsm8k"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "sampled 3 problems" in proc.stdout
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert len(config["problem_ids"]) == 3
    assert config["kit_config"]["data_parallel_size"] == 1 and config["kit_config"]["early_stop"] == []
    problems = [json.loads(line) for line in (out / "problems.jsonl").read_text().splitlines()]
    assert [p["problem_id"] for p in problems] == config["problem_ids"] and all(p["problem"] for p in problems)
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert sorted((s["problem_id"], s["index"]) for s in samples) == sorted(
        (pid, i) for pid in config["problem_ids"] for i in range(2))
    assert all(s["text"] and isinstance(s["correct"], bool) for s in samples)  # every trace, graded
    assert (out / "summary.json").is_file()
