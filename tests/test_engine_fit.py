"""Fitting a config to the model and the machine (kit/engine.py): the context is capped at
the model's own maximum, and on CPU the memory share at what vLLM can get. The real-engine
test loads the embedded model with the AIMO-3 config (16384 tokens, 0.92 of the memory)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from kit.config import KitConfig, load_config
from kit.engine import CPU_SHARE_OF_AVAILABLE, cpu_memory_share, engine_args, fit_context, model_max_len

REPO = Path(__file__).resolve().parent.parent


def model_folder(tmp_path: Path, **config) -> Path:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", **config}))
    return tmp_path


def test_max_model_len_is_capped_at_the_model_maximum_with_a_warning(tmp_path, caplog):
    folder = model_folder(tmp_path, max_position_embeddings=8192)
    with caplog.at_level(logging.WARNING, logger="kit.engine"):
        args = engine_args(KitConfig(max_model_len=16384), str(folder))
    assert args.max_model_len == 8192
    assert "16384" in caplog.text and "8192" in caplog.text


def test_a_context_the_model_takes_is_left_alone(tmp_path, caplog):
    folder = model_folder(tmp_path, max_position_embeddings=8192)
    with caplog.at_level(logging.WARNING, logger="kit.engine"):
        assert fit_context(KitConfig(max_model_len=4096), folder).max_model_len == 4096
    assert caplog.text == ""


@pytest.mark.parametrize("config, expected", [
    ({"max_position_embeddings": 8192, "seq_length": 4096}, 4096),  # the smallest key, as vLLM
    ({"text_config": {"max_position_embeddings": 2048}}, 2048),  # multimodal: the LM's own
    ({"max_position_embeddings": 4096, "rope_scaling": {"rope_type": "linear", "factor": 4.0}}, 16384),
    ({"max_position_embeddings": 32768, "rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, 32768),
    ({}, None),
])
def test_model_max_len_reads_config_json_as_vllm_does(tmp_path, config, expected):
    assert model_max_len(model_folder(tmp_path, **config)) == expected


def test_a_folder_without_config_json_is_left_to_vllm(tmp_path):
    assert model_max_len(tmp_path) is None


def test_cpu_memory_share_is_capped_at_half_the_available_memory():
    total, available = 10 * 2**30, 6 * 2**30
    assert cpu_memory_share(0.92, available, total) == pytest.approx(CPU_SHARE_OF_AVAILABLE * 0.6)
    assert cpu_memory_share(0.2, available, total) == 0.2


def test_engine_args_on_this_cpu_ask_for_no_more_than_vllm_can_get(tmp_path):
    from vllm.utils.cpu_resource_utils import get_allowed_cpu_list, get_memory_node_info

    args = engine_args(load_config("aimo3-h100"), str(model_folder(tmp_path, max_position_embeddings=8192)))
    info = get_memory_node_info(get_allowed_cpu_list()[0].numa_node)
    # Within 5%: the memory available moves between the two readings.
    assert args.gpu_memory_utilization <= 1.05 * CPU_SHARE_OF_AVAILABLE * info.available_memory / info.total_memory


LOAD_AND_GENERATE = """
import asyncio, json, sys
from kit.config import load_config
from kit.embedded_model import resolve_model_path
from kit.engine import VllmEngine

async def main():
    cfg = load_config("aimo3-h100", model=str(resolve_model_path("")))
    engine = VllmEngine(cfg, cfg.model)
    try:
        step = await engine.generate(engine.prompt_ids("What is 2 + 3?"), 8, "fit-0-0")
        print("RESULT", json.dumps({"max_model_len": engine.cfg.max_model_len, "tokens": len(step.token_ids)}))
    finally:
        engine.shutdown()

if __name__ == "__main__":
    asyncio.run(main())
"""


@pytest.mark.engine
def test_the_embedded_model_loads_and_generates_with_the_aimo3_config():
    # In a subprocess: vLLM spawns its engine process, which needs a __main__ guard.
    proc = subprocess.run([sys.executable, "-c", LOAD_AND_GENERATE], cwd=REPO, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert result["max_model_len"] == 8192 and result["tokens"] > 0
    assert "max_model_len 16384" in proc.stderr and "gpu_memory_utilization 0.92" in proc.stderr
