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



def test_tagged_tool_outputs_get_no_loss_when_the_recipe_says_tagged(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import KTOConfig

    from train.kto import KTOScriptArguments, kto_trainer

    model_dir = build_tiny_model(tmp_path / "tiny")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    fmt = KTOScriptArguments(dataset="unused", kit={"tool_format": {"kind": "tagged"}}).tool_format()
    rows = [{"prompt": chat_messages(f"What is {i} + {i}?"),
             "completion": [{"role": "assistant", "content": fmt.render_code(f"print({i} + {i})")
                             + fmt.render_output(f"SECRET{i}") + f"So \\boxed{{{2 * i}}}."}],
             "label": i % 2 == 0} for i in range(4)]
    args = KTOConfig(output_dir=str(tmp_path / "kto"), per_device_train_batch_size=4, report_to="none",
                     use_cpu=True, max_length=256)
    trainer = kto_trainer(model, tokenizer, args, rows, tool_format=fmt)
    seen = []
    model.register_forward_pre_hook(lambda module, a, kwargs: seen.append(kwargs["labels"]), with_kwargs=True)
    trainer.compute_loss(model, next(iter(trainer.get_train_dataloader())))
    assert len(seen) >= 2
    for labels in seen:
        for row in labels:
            text = tokenizer.decode(row[row != -100])
            assert "SECRET" not in text and "```output" not in text  # the kit writes the whole reply
            assert "</tool_call>" in text  # the model's own code_end stays labelled

def _kto_rows(tmp_path):
    rows = [{"prompt": chat_messages(f"What is {i} + {i}?"),
             "completion": [{"role": "assistant", "content": f"So \\boxed{{{2 * i + (i % 2)}}}."}],
             "label": i % 2 == 0} for i in range(8)]
    data = tmp_path / "kto.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data


def _steps_run(monkeypatch, model_dir, data, out, **overrides) -> list[int]:
    """The global steps a KTO run through ``python -m train kto`` trains (counted per step)."""
    from train import kto
    from train.__main__ import main as train

    steps = []
    original = kto.ToolMaskedKTOTrainer.training_step

    def counting_step(self, *a, **kw):
        steps.append(self.state.global_step)
        return original(self, *a, **kw)

    monkeypatch.setattr(kto.ToolMaskedKTOTrainer, "training_step", counting_step)
    flags = {"dataset": data, "model_name_or_path": model_dir, "dtype": "float32", "output_dir": out,
             "max_steps": 10, "save_steps": 5, "per_device_train_batch_size": 4, "max_length": 128,
             "report_to": "none", "use_cpu": "true", **overrides}
    train(["kto", *(item for key, value in flags.items() for item in (f"--{key}", str(value)))])
    monkeypatch.undo()
    return steps


def test_kto_resumes_from_the_last_checkpoint_or_the_one_the_recipe_names(tmp_path, monkeypatch):
    import shutil

    model_dir = build_tiny_model(tmp_path / "tiny")
    data = _kto_rows(tmp_path)
    first = tmp_path / "first"
    assert _steps_run(monkeypatch, model_dir, data, first) == list(range(10))
    assert (first / "checkpoint-5").is_dir() and (first / "checkpoint-10").is_dir()

    # resume_from_checkpoint names a checkpoint: training goes on from it, into a new output_dir.
    named = _steps_run(monkeypatch, model_dir, data, tmp_path / "second",
                       resume_from_checkpoint=first / "checkpoint-5")
    assert named == [5, 6, 7, 8, 9]

    # A run killed between steps 5 and 10 (only checkpoint-5 left) picks up there when run again.
    for item in first.iterdir():
        if item.name != "checkpoint-5":
            shutil.rmtree(item) if item.is_dir() else item.unlink()
    assert _steps_run(monkeypatch, model_dir, data, first) == [5, 6, 7, 8, 9]
    assert json.loads((first / "trainer_state.json").read_text())["global_step"] == 10


def test_a_named_checkpoint_that_does_not_exist_is_refused_before_any_model_loads(tmp_path):
    from trl import KTOConfig

    from train.common import resume_checkpoint

    args = KTOConfig(output_dir=str(tmp_path / "out"), resume_from_checkpoint=str(tmp_path / "checkpoint-7"),
                     report_to="none", use_cpu=True)
    with pytest.raises(FileNotFoundError, match="resume_from_checkpoint: no checkpoint folder .*checkpoint-7"):
        resume_checkpoint(args)
