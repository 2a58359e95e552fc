"""Page-cache warm-up: read a model's weight files once, front to back, before vLLM loads them.

Kaggle serves attached datasets and models (``/kaggle/input/...``) from network storage.
vLLM's safetensors loader memory-maps each file and touches its tensors in the order the model
builds its layers: small reads scattered over the file, each a round trip to that storage.
Reading every weight file once, sequentially and in big chunks (what ``cat model/*.safetensors
> /dev/null`` does), moves it at the disk's streaming speed into the operating system's page
cache, and vLLM's load that follows is served from memory. AIMO-3's top teams did this before
starting vLLM (gpt-oss-120b is about 65 GB). It pays only when the machine's free memory holds
the weights (else the cache evicts what it read first) and costs one sequential read; a
second warm-up, as at an engine restart, reads from memory.

Only the files vLLM's default loader will read are read (``weight_files``), not everything
under the folder: gpt-oss-120b's Hugging Face folder also holds ``original/`` and ``metal/``
copies of the weights, as large again each, which would triple the read and evict the rest.

``KitConfig.warm_page_cache`` turns it on (``kit.engine.VllmEngine`` calls it).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

# As vLLM 0.32's default loader picks them (model_loader/default_loader.py, _prepare_weights):
# the first suffix with files in the folder itself wins; safetensors listed in the index only;
# no trainer state. A .gguf file is what a GGUF model folder holds instead.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")
SAFETENSORS_INDEX = "model.safetensors.index.json"
NOT_WEIGHTS = ("training_args.bin", "optimizer.bin", "optimizer.pt", "scheduler.pt", "scaler.pt")
CHUNK_BYTES = 16 * 2**20  # big enough that each read is one long transfer, small enough to stay in cache


def weight_files(model_path: str | Path) -> list[Path]:
    """The weight files vLLM will load from ``model_path``, in name order; FileNotFoundError when
    the folder does not exist, ValueError naming an index that is not a weight map."""
    folder = Path(model_path)
    if not folder.is_dir():
        raise FileNotFoundError(f"warm_page_cache: model folder {folder} does not exist")
    for suffix in WEIGHT_SUFFIXES:
        files = sorted(p for p in folder.glob(f"*{suffix}") if p.is_file() and p.name not in NOT_WEIGHTS)
        if files:
            break
    index = folder / SAFETENSORS_INDEX
    if not files or suffix != ".safetensors" or not index.is_file():
        return files
    try:
        listed = set(json.loads(index.read_text())["weight_map"].values())
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"warm_page_cache: {index} is not a safetensors index ({error!r})") from error
    return [p for p in files if p.name in listed]


def warm_page_cache(model_path: str | Path, chunk_bytes: int = CHUNK_BYTES,
                    clock: Callable[[], float] = time.monotonic) -> tuple[int, int, float]:
    """Read each weight file vLLM will load from ``model_path`` once, sequentially, with a progress
    bar, and log the rate. Returns (files read, bytes read, seconds taken)."""
    from tqdm import tqdm

    files = weight_files(model_path)
    if not files:
        log.warning("warm_page_cache: no weight files (%s) under %s: nothing read",
                    ", ".join(f"*{s}" for s in WEIGHT_SUFFIXES), model_path)
        return 0, 0, 0.0
    total = sum(p.stat().st_size for p in files)
    buffer = memoryview(bytearray(chunk_bytes))
    done = 0
    started = clock()
    with tqdm(total=total, unit="B", unit_scale=True, desc="page cache") as progress:
        for path in files:
            with open(path, "rb", buffering=0) as f:
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)  # read ahead further
                while count := f.readinto(buffer):
                    done += count
                    progress.update(count)
    seconds = clock() - started
    log.info("warm_page_cache: read %d weight files, %.2f GB in %.1f s (%.2f GB/s) from %s", len(files),
             done / 1e9, seconds, done / 1e9 / seconds if seconds > 0 else float("inf"), model_path)
    return len(files), done, seconds
