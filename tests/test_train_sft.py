"""The SFT chain on CPU with the tiny random model: stage 1 (CoT) -> stage 2 (TIR), LoRA and
linear merges, recipe validation and resuming. Runs train.sft in-process on the smoke recipes,
shortened by command-line overrides."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM

from train import sft
from train.__main__ import main as train
from train.chats import IGNORE_INDEX, load_messages, tokenize_with_mask
from train.merge import merge_linear, merge_lora
from train.tiny_model import build_tiny_model

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ROOT / "train/recipes/smoke"
COT_DATA = ROOT / "train/data/gsm8k_train_slice.jsonl"
TIR_DATA = ROOT / "train/data/tir_traces_sample.jsonl"
# Few rows and steps: enough to move the weights and exercise packing, fast on 2 cores.
SHORT = ["--max_samples", "40", "--max_steps", "4", "--logging_steps", "1", "--max_length", "128"]


def run_sft(recipe: str, model: Path, data: Path, out: Path, *extra: str) -> Path:
    train(["sft", "--config", str(RECIPES / recipe), "--model_name_or_path", str(model), "--dataset", str(data),
              "--output_dir", str(out), *SHORT, *extra])
    return out


def weights(path: Path) -> dict[str, torch.Tensor]:
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).state_dict()


def losses(path: Path) -> list[float]:
    history = json.loads((path / "trainer_state.json").read_text())["log_history"]
    return [entry["loss"] for entry in history if "loss" in entry]


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("sft")
    tiny = build_tiny_model(tmp / "tiny")
    cot = run_sft("sft_cot.yaml", tiny, COT_DATA, tmp / "cot")
    tir = run_sft("sft_tir.yaml", cot, TIR_DATA, tmp / "tir")
    return {"tmp": tmp, "tiny": tiny, "cot": cot, "tir": tir}


def test_cot_then_tir_trains_and_saves_a_loadable_model(chain):
    for stage in ("cot", "tir"):
        stage_losses = losses(chain[stage])
        assert stage_losses and all(math.isfinite(loss) for loss in stage_losses)
    tiny, cot, tir = weights(chain["tiny"]), weights(chain["cot"]), weights(chain["tir"])
    name = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(tiny[name], cot[name])  # stage 1 trained the random model
    assert not torch.equal(cot[name], tir[name])  # stage 2 started from stage 1 and moved on
    assert (chain["tir"] / "chat_template.jinja").exists()  # the kit renders prompts with it


def test_lora_adapter_merges_into_a_model_of_the_base_shape(chain):
    adapter = run_sft("sft_tir.yaml", chain["cot"], TIR_DATA, chain["tmp"] / "tir_lora", "--use_peft", "true")
    assert (adapter / "adapter_config.json").exists() and not (adapter / "model.safetensors").exists()
    merged = weights(merge_lora(chain["cot"], adapter, chain["tmp"] / "merged_lora"))
    base = weights(chain["cot"])
    assert {k: v.shape for k, v in merged.items()} == {k: v.shape for k, v in base.items()}
    name = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(merged[name], base[name])  # the adapter's delta is in the weights


def test_linear_merge_is_the_weighted_average(chain):
    out = merge_linear([chain["cot"], chain["tir"]], [0.3, 0.7], chain["tmp"] / "merged_linear")
    cot, tir, merged = weights(chain["cot"]), weights(chain["tir"]), weights(out)
    for name in ("model.embed_tokens.weight", "model.layers.1.mlp.down_proj.weight"):
        torch.testing.assert_close(merged[name], 0.3 * cot[name] + 0.7 * tir[name])


def test_linear_merge_refuses_mismatched_shapes(chain):
    other = build_tiny_model(chain["tmp"] / "tiny_wide", intermediate_size=128)
    with pytest.raises(ValueError, match="shape mismatch for model.layers.0.mlp"):
        merge_linear([chain["tiny"], other], [0.5, 0.5], chain["tmp"] / "never")


def test_unknown_recipe_field_fails_before_any_model_loads(tmp_path, monkeypatch):
    recipe = yaml.safe_load((RECIPES / "sft_cot.yaml").read_text())
    recipe["learning_rat"] = 1e-4
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(recipe))

    def must_not_load(*args, **kwargs):
        raise AssertionError("a model or tokenizer was loaded before the recipe was validated")

    monkeypatch.setattr(sft.AutoTokenizer, "from_pretrained", must_not_load)
    monkeypatch.setattr(sft, "SFTTrainer", must_not_load)
    with pytest.raises(ValueError, match="learning_rat"):
        train(["sft", "--config", str(path)])


def test_rerun_resumes_from_the_last_checkpoint(chain, monkeypatch):
    out = chain["tmp"] / "resume"
    args = ("--max_steps", "10", "--save_strategy", "steps", "--save_steps", "5")
    run_sft("sft_cot.yaml", chain["tiny"], COT_DATA, out, *args)
    assert (out / "checkpoint-5").is_dir() and (out / "checkpoint-10").is_dir()
    # Simulate a run killed between steps 5 and 10: only checkpoint-5 survives.
    for item in out.iterdir():
        if item.name != "checkpoint-5":
            shutil.rmtree(item) if item.is_dir() else item.unlink()

    steps = []
    original = sft.SFTTrainer.training_step

    def counting_step(self, *a, **kw):
        steps.append(self.state.global_step)
        return original(self, *a, **kw)

    monkeypatch.setattr(sft.SFTTrainer, "training_step", counting_step)
    run_sft("sft_cot.yaml", chain["tiny"], COT_DATA, out, *args)
    assert steps == [5, 6, 7, 8, 9]  # only the steps after the checkpoint ran again
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 10
    assert (out / "model.safetensors").exists()


def test_numina_chat_template_labels_the_solution_and_eos(chain):
    from transformers import AutoTokenizer

    template = yaml.safe_load((ROOT / "train/recipes/numina/sft_cot.yaml").read_text())["chat_template"]
    tokenizer = AutoTokenizer.from_pretrained(chain["tiny"])
    tokenizer.chat_template = template
    messages = [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "It is 4."}]
    ex = tokenize_with_mask(tokenizer, messages)
    labelled = tokenizer.decode([t for t, lbl in zip(ex["input_ids"], ex["labels"]) if lbl != IGNORE_INDEX])
    assert labelled == "It is 4." + tokenizer.eos_token


def smoke_tir_args(model: Path, *overrides: str):
    return sft.make_parser().parse_args_and_config(["--config", str(RECIPES / "sft_tir.yaml"),
                                         "--model_name_or_path", str(model), *overrides])


def labelled_tokens(labels_column) -> int:
    return sum(label != IGNORE_INDEX for labels in labels_column for label in labels)


def whole_chats(tokenizer, script_args) -> list[dict]:
    rows = load_messages(script_args.dataset, limit=script_args.max_samples, decontaminate=script_args.decontaminate)
    return [tokenize_with_mask(tokenizer, row["messages"]) for row in rows]


def test_packing_keeps_every_labelled_token_of_chats_longer_than_max_length(chain, caplog):
    from transformers import AutoTokenizer

    script_args, training_args, _ = smoke_tir_args(chain["tiny"])
    tokenizer = AutoTokenizer.from_pretrained(chain["tiny"])
    whole = whole_chats(tokenizer, script_args)
    long = [ex for ex in whole if len(ex["input_ids"]) > training_args.max_length]
    assert len(long) > len(whole) / 2  # the smoke max_length (256) is shorter than most traces
    with caplog.at_level("INFO", logger=sft.logger.name):
        dataset = sft.tokenized_dataset(script_args, tokenizer, training_args)
    # The dataset the trainer trains on, after TRL's own packing ("wrapped", from the recipe).
    trainer = sft.SFTTrainer(model=str(chain["tiny"]), args=training_args, train_dataset=dataset,
                             processing_class=tokenizer)
    total = labelled_tokens(ex["labels"] for ex in whole)
    assert labelled_tokens(trainer.train_dataset["labels"]) == total
    assert max(map(len, trainer.train_dataset["input_ids"])) == training_args.max_length
    assert f"kept {len(whole)} of {len(whole)} chats, {total} of {total} labelled tokens" in caplog.text


def test_without_packing_long_chats_are_dropped_not_cut(chain, caplog):
    from transformers import AutoTokenizer

    script_args, training_args, _ = smoke_tir_args(chain["tiny"], "--packing", "false")
    tokenizer = AutoTokenizer.from_pretrained(chain["tiny"])
    whole = whole_chats(tokenizer, script_args)
    short = [ex for ex in whole if len(ex["input_ids"]) <= training_args.max_length]
    with caplog.at_level("INFO", logger=sft.logger.name):
        dataset = sft.tokenized_dataset(script_args, tokenizer, training_args)
    trainer = sft.SFTTrainer(model=str(chain["tiny"]), args=training_args, train_dataset=dataset,
                             processing_class=tokenizer)
    # Every chat trained on is whole: its answer and end of turn are there.
    assert sorted(trainer.train_dataset["labels"]) == sorted(ex["labels"] for ex in short)
    assert f"{len(whole) - len(short)} chats are longer than max_length 256 and were dropped" in caplog.text
