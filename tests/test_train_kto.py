"""KTO on the tiny model with TRL's KTOTrainer: it trains on both labels, weights balance."""

import json
import re

import pytest
import torch
from safetensors.torch import load_file

from kit.tir import chat_messages
from train.kto import balanced_desirable_weight, load_kto_rows, main
from train.tiny_model import build_tiny_model


def test_balanced_weight_puts_trls_ratio_at_one():
    weight = balanced_desirable_weight(n_desirable=2, n_undesirable=6, undesirable_weight=1.0)
    assert weight * 2 / (1.0 * 6) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="both labels"):
        balanced_desirable_weight(0, 5, 1.0)


def test_rows_missing_a_field_are_refused_with_file_and_line(tmp_path):
    path = tmp_path / "kto.jsonl"
    path.write_text('{"prompt": [], "completion": [], "label": true}\n{"prompt": []}\n')
    with pytest.raises(ValueError, match="kto.jsonl:2: missing"):
        load_kto_rows(str(path))


def test_kto_trains_the_tiny_model(tmp_path):
    from trl import KTOConfig, ModelConfig

    from train.kto import KTOScriptArguments

    model_dir = build_tiny_model(tmp_path / "tiny")
    rows = [{"prompt": chat_messages(f"What is {i} + {i}?"),
             "completion": [{"role": "assistant", "content": f"```python\nprint({i} + {i})\n```\nSo \\boxed{{{2 * i + (i % 2)}}}."}],
             "label": i % 2 == 0} for i in range(8)]
    data = tmp_path / "kto.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "kto"
    args = KTOConfig(output_dir=str(out), max_steps=3, per_device_train_batch_size=4, learning_rate=1e-3,
                     logging_steps=1, save_strategy="no", report_to="none", use_cpu=True, max_length=256)
    main(KTOScriptArguments(dataset=str(data)), args, ModelConfig(model_name_or_path=str(model_dir), dtype="float32"))
    before, after = load_file(model_dir / "model.safetensors"), load_file(out / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before)
    losses = [h["loss"] for h in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in h]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))


def test_tool_outputs_get_no_loss_in_the_batches_the_trainer_builds(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import KTOConfig

    from train.kto import kto_trainer

    model_dir = build_tiny_model(tmp_path / "tiny")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    # Completions as the kit writes them: the tool output (here "SECRET<i>") follows the fence.
    rows = [{"prompt": chat_messages(f"What is {i} + {i}?"),
             "completion": [{"role": "assistant", "content": f"```python\nprint({i} + {i})\n```\n```output\n"
                                                             f"SECRET{i}\n```\nSo \\boxed{{{2 * i}}}."}],
             "label": i % 2 == 0} for i in range(4)]
    args = KTOConfig(output_dir=str(tmp_path / "kto"), per_device_train_batch_size=4, report_to="none",
                     use_cpu=True, max_length=256)
    trainer = kto_trainer(model, tokenizer, args, rows)
    seen = []  # the labels of every forward pass: the scored completions, then the KL ones
    model.register_forward_pre_hook(lambda module, a, kwargs: seen.append(kwargs["labels"]), with_kwargs=True)
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.compute_loss(model, batch)
    assert len(seen) >= 2
    for labels in seen:
        for row in labels:
            text = tokenizer.decode(row[row != -100])
            assert "SECRET" not in text  # the tool output
            assert re.fullmatch(r"```python\nprint\(\d \+ \d\)\n```\n```outputSo \\boxed\{\d\}\.<\|im_end\|>", text)
