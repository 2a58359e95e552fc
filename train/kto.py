"""KTO on the kit's own labelled samples (``train sample``, then ``train select``), with TRL's KTOTrainer.

    python -m train kto --config train/recipes/smoke/kto.yaml

A recipe's keys are fields of ``KTOScriptArguments`` (below), TRL's ``KTOConfig`` and
``ModelConfig``; an unknown key fails before any model loads. Training resumes as every trainer
of the chain does (``train.common.resume_checkpoint``): from ``resume_from_checkpoint`` when set,
else from the last checkpoint in ``output_dir``.

TRL advises keeping ``desirable_weight * n_desirable / (undesirable_weight * n_undesirable)``
between 1 and 4/3. With ``balance_weights: true`` (the default) the desirable weight is set
from the data's label counts to the low end of that range, so a model that is mostly wrong
(few desirable samples) still learns from what it got right.

A completion holds the tool outputs the kit wrote into it. TRL's KTOTrainer scores every
completion token, so ``ToolMaskedKTOTrainer`` narrows its ``completion_mask`` to the tokens
``train.chats.tokenize_with_mask`` labels (the SFT rule: the model's own text, the ```` ```output ````
fence and the end-of-turn marker), for the scored completions and the KL ones alike.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import KTOConfig, KTOTrainer, ModelConfig, TrlParser, get_peft_config
from trl.trainer.kto_trainer import DataCollatorForUnpairedPreference

from train.chats import IGNORE_INDEX, TextFormat, tokenize_with_mask, training_format
from train.common import KIT_HELP, kit_config, kit_mapping, log_to_stdout, resume_checkpoint

log = logging.getLogger(__name__)


@dataclass
class KTOScriptArguments:
    dataset: str = field(metadata={"help": "JSONL written by `python -m train select` (kto.jsonl: prompt, completion, label)."})
    balance_weights: bool = field(default=True, metadata={"help": "Set desirable_weight from the label counts (TRL's 1 to 4/3 rule)."})
    kit: dict | str | None = field(
        default_factory=dict,
        metadata={"help": KIT_HELP + " The kit config the samples were drawn with (train sample's): its tool_format "
                                     "says where the kit-written tool outputs are, which get no loss."},
    )

    def __post_init__(self) -> None:
        self.kit = kit_mapping(self.kit)
        self.tool_format()  # a bad kit setting fails now, while the recipe is parsed

    def tool_format(self) -> TextFormat:
        return training_format(kit_config(self.kit))


def load_kto_rows(path: str) -> list[dict]:
    rows = []
    for line_no, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        missing = {"prompt", "completion", "label"} - set(row)
        if missing:
            raise ValueError(f"{path}:{line_no}: missing {sorted(missing)}")
        rows.append({"prompt": row["prompt"], "completion": row["completion"], "label": bool(row["label"])})
    return rows


def balanced_desirable_weight(n_desirable: int, n_undesirable: int, undesirable_weight: float) -> float:
    """The desirable weight that puts TRL's ratio at 1 (the low end of [1, 4/3])."""
    if not n_desirable or not n_undesirable:
        raise ValueError(f"KTO needs both labels: {n_desirable} desirable, {n_undesirable} undesirable rows")
    return undesirable_weight * n_undesirable / n_desirable


@dataclass
class ToolMaskedCollator(DataCollatorForUnpairedPreference):
    """TRL's collator, with ``completion_mask`` (and ``KL_completion_mask``) zero on the tokens
    the example's ``loss_mask`` (``KL_loss_mask``) leaves out."""

    def torch_call(self, examples: list[dict]) -> dict:
        output = super().torch_call(examples)
        for prefix in ("", "KL_"):
            if f"{prefix}loss_mask" not in examples[0]:
                continue
            completion_mask = output[f"{prefix}completion_mask"]
            for row, example in enumerate(examples):
                # The collator kept the first max_length tokens of prompt + completion; cut the mask alike.
                mask = ([1] * len(example["prompt_ids"]) + example[f"{prefix}loss_mask"])[:completion_mask.size(1)]
                completion_mask[row, :len(mask)] *= torch.tensor(mask, dtype=completion_mask.dtype)
        return output


class ToolMaskedKTOTrainer(KTOTrainer):
    """KTOTrainer that puts no loss on the tool outputs inside completions (module docstring).
    Build it with ``kto_trainer``, which gives it the collator that applies the masks and the
    tool-call format the completions were sampled in."""

    def __init__(self, *args, tool_format: TextFormat | None = None, **kwargs):
        self._tool_format = tool_format  # read by _prepare_dataset, which KTOTrainer.__init__ calls
        super().__init__(*args, **kwargs)

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        dataset = super()._prepare_dataset(dataset, processing_class, args, dataset_name)

        def loss_mask(example: dict) -> dict:
            encoded = tokenize_with_mask(self._tokenizer, example["prompt"] + example["completion"],
                                         tool_format=self._tool_format)
            if encoded["input_ids"] != example["prompt_ids"] + example["completion_ids"]:
                raise ValueError(f"{dataset_name} dataset: TRL and train.chats tokenize the chat differently, so the "
                                 f"tool outputs cannot be located (completion {example['completion']!r:.200})")
            labels = encoded["labels"][len(example["prompt_ids"]):]
            return {"loss_mask": [int(label != IGNORE_INDEX) for label in labels]}

        dataset = dataset.map(loss_mask, desc=f"Masking tool outputs in {dataset_name} dataset")
        if "KL_completion_ids" in dataset.column_names:
            # A KL completion is another row's completion (TRL rotates them within a batch).
            masks = {tuple(ids): mask for ids, mask in zip(dataset["completion_ids"], dataset["loss_mask"])}
            dataset = dataset.map(lambda example: {"KL_loss_mask": masks[tuple(example["KL_completion_ids"])]})
        return dataset

    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:  # the columns the trainer keeps for the collator
            super()._set_signature_columns_if_needed()
            self._signature_columns += ["loss_mask", "KL_loss_mask"]


def kto_trainer(model, tokenizer, training_args: KTOConfig, rows: list[dict], peft_config=None,
                tool_format: TextFormat | None = None) -> ToolMaskedKTOTrainer:
    collator = ToolMaskedCollator(pad_token_id=tokenizer.pad_token_id, max_length=training_args.max_length,
                                  pad_to_multiple_of=training_args.pad_to_multiple_of)
    return ToolMaskedKTOTrainer(model=model, args=training_args, train_dataset=Dataset.from_list(rows),
                                processing_class=tokenizer, data_collator=collator, peft_config=peft_config,
                                tool_format=tool_format)


def main(script_args: KTOScriptArguments, training_args: KTOConfig, model_args: ModelConfig) -> None:
    checkpoint = resume_checkpoint(training_args)

    # --- data
    rows = load_kto_rows(script_args.dataset)
    n_desirable = sum(r["label"] for r in rows)
    if script_args.balance_weights:
        training_args.desirable_weight = balanced_desirable_weight(
            n_desirable, len(rows) - n_desirable, training_args.undesirable_weight)
    log.info("KTO on %d rows (%d desirable); desirable_weight %.3f", len(rows), n_desirable, training_args.desirable_weight)

    # --- model
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path)
    model = AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path, dtype=model_args.dtype)

    # --- train
    trainer = kto_trainer(model, tokenizer, training_args, rows, get_peft_config(model_args), script_args.tool_format())
    trainer.train(resume_from_checkpoint=checkpoint)

    # --- save
    trainer.save_model(training_args.output_dir)
    trainer.save_state()  # trainer_state.json: the loss history, for reports and resume checks
    tokenizer.save_pretrained(training_args.output_dir)


def make_parser(subparsers: argparse._SubParsersAction | None = None) -> TrlParser:
    """TRL's script convention: the step's own parser, or its subcommand of ``python -m train``."""
    dataclass_types = (KTOScriptArguments, KTOConfig, ModelConfig)
    if subparsers is not None:
        return subparsers.add_parser("kto", help="KTO on the kit's labelled samples", dataclass_types=dataclass_types)
    return TrlParser(dataclass_types, prog="python -m train kto")


if __name__ == "__main__":
    log_to_stdout()
    main(*make_parser().parse_args_and_config())
