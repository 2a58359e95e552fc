"""The page-cache warm-up (kit/page_cache.py): each weight file vLLM will load is read once, to
its last byte, and nothing else is (copies in subfolders, shards the index does not list,
trainer state); the rate is logged on an injected clock."""

from __future__ import annotations

import json
import logging
import os

import pytest

from kit.page_cache import warm_page_cache, weight_files


def write(path, size):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))


@pytest.fixture
def gpt_oss_like(tmp_path):
    """Shards and their index at the top, and the copies gpt-oss-120b's folder also holds."""
    folder = tmp_path / "model"
    shards = {"model-00001-of-00002.safetensors": 3_000_001, "model-00002-of-00002.safetensors": 1_234}
    for name, size in shards.items():
        write(folder / name, size)
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    write(folder / "consolidated.safetensors", 50_000)  # not in the index: vLLM skips it
    write(folder / "original" / "model--00001-of-00001.safetensors", 70_000)
    write(folder / "metal" / "model.bin", 60_000)
    (folder / "config.json").write_text("{}")
    (folder / "tokenizer.json").write_text("{" + " " * 10_000 + "}")
    return folder, shards


def test_every_weight_file_vllm_loads_is_read_to_its_end_in_chunks(gpt_oss_like):
    folder, shards = gpt_oss_like
    files, read, _ = warm_page_cache(folder, chunk_bytes=4096)  # many chunks per file
    assert (files, read) == (len(shards), sum(shards.values()))


def test_only_the_indexed_top_level_shards_are_chosen(gpt_oss_like):
    folder, shards = gpt_oss_like
    assert [p.name for p in weight_files(folder)] == sorted(shards)


def test_without_an_index_every_top_level_safetensors_file_is_chosen(gpt_oss_like):
    folder, shards = gpt_oss_like
    (folder / "model.safetensors.index.json").unlink()
    assert [p.name for p in weight_files(folder)] == sorted([*shards, "consolidated.safetensors"])


def test_bin_weights_are_chosen_when_there_is_no_safetensors_and_trainer_state_is_not(tmp_path):
    for name in ("pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin", "training_args.bin",
                 "optimizer.bin", "scheduler.pt"):
        write(tmp_path / name, 10)
    assert [p.name for p in weight_files(tmp_path)] == ["pytorch_model-00001-of-00002.bin",
                                                        "pytorch_model-00002-of-00002.bin"]


def test_the_rate_is_logged_in_gb_per_second(gpt_oss_like, caplog):
    folder, shards = gpt_oss_like
    ticks = iter([100.0, 102.0])  # two seconds on the injected clock
    with caplog.at_level(logging.INFO, logger="kit.page_cache"):
        assert warm_page_cache(folder, clock=lambda: next(ticks))[2] == 2.0
    gigabytes = sum(shards.values()) / 1e9
    assert f"{gigabytes:.2f} GB in 2.0 s ({gigabytes / 2:.2f} GB/s)" in caplog.text


def test_a_folder_without_weights_reads_nothing_and_says_so(tmp_path, caplog):
    (tmp_path / "config.json").write_text("{}")
    write(tmp_path / "original" / "model.safetensors", 10)  # vLLM does not look in subfolders either
    with caplog.at_level(logging.WARNING, logger="kit.page_cache"):
        assert warm_page_cache(tmp_path) == (0, 0, 0.0)
    assert "no weight files" in caplog.text and str(tmp_path) in caplog.text


def test_a_missing_folder_and_a_broken_index_are_named(tmp_path, gpt_oss_like):
    with pytest.raises(FileNotFoundError, match=r"warm_page_cache: model folder .*nothere does not exist"):
        warm_page_cache(tmp_path / "nothere")
    folder, _ = gpt_oss_like
    (folder / "model.safetensors.index.json").write_text('["not", "a", "map"]')
    with pytest.raises(ValueError, match=r"warm_page_cache: .*index\.json is not a safetensors index"):
        warm_page_cache(folder)
