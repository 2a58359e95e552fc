"""DPO on preference pairs of the kit's own samples (``train select``), with TRL's DPOTrainer.

    python -m train dpo --config train/recipes/smoke/dpo.yaml
    accelerate launch --config_file train/recipes/accelerate/zero3_8gpu.yaml \\
        -m train.dpo --config train/recipes/dpo/dpo_hard_pairs.yaml

A recipe's keys are fields of ``DPOScriptArguments`` (below), TRL's ``DPOConfig`` and
``ModelConfig``; an unknown key fails before any model loads. Training resumes as every trainer
of the chain does (``train.common.resume_checkpoint``): from ``resume_from_checkpoint`` when set,
else from the last checkpoint in ``output_dir``.

The data are the pair rows ``train select`` writes (TRL's conversational preference format with
an explicit prompt): ``prompt`` (system/user messages), ``chosen`` and ``rejected`` (assistant
messages holding the kit's traces as it wrote them), ``problem_id`` and ``kind``
(``train.pairs.PAIR_KINDS``). Every row is checked while loading: a missing or malformed field
fails with the file and line before any model loads. ``kinds`` picks the kinds a recipe trains
on (``train select`` writes them all into one ``dpo.jsonl``).

The reference model is TRL's default: a frozen copy of the starting model for a full fine-tune,
the same model with its adapter disabled under ``use_peft: true`` (then only the adapter is
saved; ``python -m train merge lora`` merges it). Reference log-probs are computed on the fly
(TRL's default, ``precompute_ref_log_probs: false``).

Tool outputs: TRL's collator scores every completion token (its ``completion_mask``, from which
the labels are built; TRL 1.16's DPO takes no per-token mask column), so
``ToolMaskedDPOTrainer`` narrows that mask to the tokens ``train.chats.tokenize_with_mask``
labels (the SFT rule: the model's own text, the end-of-turn marker; not the kit-written tool
outputs), in the chosen and the rejected response alike. What it guarantees: the tokens TRL
trains on are those ``tokenize_with_mask`` tokenized (checked per pair, a mismatch raises), and
each batch row holds exactly the tokens the mask was cut for (checked per row after TRL's
``max_length``/``truncation_mode`` cut), so no tool-output token is scored. What it does not: a
pair longer than ``max_length`` is cut as TRL cuts it (its end of turn, or with ``keep_end`` its
start, is lost); the log counts such pairs.
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from dataclasses import dataclass, field

import torch
from datasets import Dataset
from transformers import AutoTokenizer
from trl import DPOConfig, DPOTrainer, ModelConfig, TrlParser, get_peft_config, get_quantization_config
from trl.trainer.dpo_trainer import DataCollatorForPreference

from kit.problem_io import iter_rows
from train.chats import IGNORE_INDEX, TextFormat, check_messages, tokenize_with_mask, training_format
from train.common import KIT_HELP, kit_config, kit_mapping, log_to_stdout, resume_checkpoint
from train.pairs import PAIR_KINDS

log = logging.getLogger(__name__)

PAIR_FIELDS = ("prompt", "chosen", "rejected", "problem_id", "kind")
SIDES = ("chosen", "rejected")


@dataclass
class DPOScriptArguments:
    """What the recipe says about the data; the rest is DPOConfig and ModelConfig."""

    dataset: str = field(
        metadata={"help": "JSONL of pair rows written by `python -m train select` (prompt, chosen, rejected, "
                          "problem_id, kind)."},
    )
    kinds: list[str] = field(
        default_factory=lambda: list(PAIR_KINDS),
        metadata={"help": f"The pair kinds to train on, of {list(PAIR_KINDS)}: correct_wrong (a correct trace over "
                          "a wrong one of the same problem), length (the shorter of two correct traces), language "
                          "(a well-formed correct trace over a mixed-language correct one)."},
    )
    kit: dict | str | None = field(
        default_factory=dict,
        metadata={"help": KIT_HELP + " The kit config the traces were sampled with: its tool_format says where the "
                                     "kit-written tool outputs are, which get no loss."},
    )

    def __post_init__(self) -> None:
        unknown = sorted(set(self.kinds) - set(PAIR_KINDS))
        if unknown:
            raise ValueError(f"kinds: {unknown} are not pair kinds; expected some of {list(PAIR_KINDS)}")
        self.kit = kit_mapping(self.kit)
        self.tool_format()  # a bad kit setting fails now, while the recipe is parsed

    def tool_format(self) -> TextFormat:
        return training_format(kit_config(self.kit))


def load_pair_rows(path: str, kinds: tuple[str, ...] | list[str] = PAIR_KINDS) -> list[dict]:
    """The pairs of ``kinds`` in ``path`` as ``{"prompt", "chosen", "rejected"}``; every row is
    checked, whatever its kind."""
    rows, counts = [], Counter()
    for where, row in iter_rows(path):
        missing = [name for name in PAIR_FIELDS if name not in row]
        if missing:
            raise ValueError(f"{where}: missing {missing}")
        check_messages(row["prompt"], where, "prompt", {"system", "user"})
        for side in SIDES:
            check_messages(row[side], where, side, {"assistant"})
        if row["kind"] not in PAIR_KINDS:
            raise ValueError(f"{where}: field 'kind' is {row['kind']!r}, not one of {list(PAIR_KINDS)}")
        counts[row["kind"]] += 1
        if row["kind"] in kinds:
            rows.append({name: row[name] for name in ("prompt", *SIDES)})
    log.info("%s: %d pairs by kind %s; training on %s", path, sum(counts.values()), dict(counts), list(kinds))
    if not rows:
        raise ValueError(f"{path}: no pairs of kinds {list(kinds)} (found {dict(counts)})")
    return rows


@dataclass
class ToolMaskedPreferenceCollator(DataCollatorForPreference):
    """TRL's collator, with ``completion_mask`` zero on the tokens an example's
    ``chosen_loss_mask`` / ``rejected_loss_mask`` leave out, cut as TRL cuts the sequence."""

    def _cut(self, sequence: list[int]) -> list[int]:
        """TRL's per-sequence truncation (DataCollatorForPreference.torch_call)."""
        if self.max_length is None:
            return sequence
        return sequence[:self.max_length] if self.truncation_mode == "keep_start" else sequence[-self.max_length:]

    def torch_call(self, examples: list[dict]) -> dict:
        output = super().torch_call(examples)  # rows: every chosen sequence, then every rejected one
        completion_mask = output["completion_mask"]
        for side_index, side in enumerate(SIDES):
            for i, example in enumerate(examples):
                row = side_index * len(examples) + i
                ids = self._cut(example["prompt_ids"] + example[f"{side}_ids"])
                mask = self._cut([0] * len(example["prompt_ids"]) + example[f"{side}_loss_mask"])
                laid_out = output["input_ids"][row, :len(ids)].tolist()
                if laid_out != ids or output["attention_mask"][row].sum() != len(ids):
                    raise RuntimeError(f"TRL's collator laid out batch row {row} ({side}) otherwise than its "
                                       "truncation was mirrored here: the tool-output mask would not line up")
                completion_mask[row, :len(mask)] *= torch.tensor(mask, dtype=completion_mask.dtype)
        return output


class ToolMaskedDPOTrainer(DPOTrainer):
    """DPOTrainer that puts no loss on the tool outputs inside either response (module docstring).
    Build it with ``dpo_trainer``, which gives it the collator that applies the masks and the
    tool-call format the traces were sampled in."""

    def __init__(self, *args, tool_format: TextFormat | None = None, **kwargs):
        self._tool_format = tool_format  # read by _prepare_dataset, which DPOTrainer.__init__ calls
        super().__init__(*args, **kwargs)

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        dataset = super()._prepare_dataset(dataset, processing_class, args, dataset_name)

        def loss_masks(example: dict) -> dict:
            masks = {}
            for side in SIDES:
                encoded = tokenize_with_mask(self._tokenizer, example["prompt"] + example[side],
                                             tool_format=self._tool_format)
                if encoded["input_ids"] != example["prompt_ids"] + example[f"{side}_ids"]:
                    raise ValueError(f"{dataset_name} dataset: TRL and train.chats tokenize the chat differently, so "
                                     f"the tool outputs cannot be located ({side} {example[side]!r:.200})")
                labels = encoded["labels"][len(example["prompt_ids"]):]
                masks[f"{side}_loss_mask"] = [int(label != IGNORE_INDEX) for label in labels]
            return masks

        dataset = dataset.map(loss_masks, desc=f"Masking tool outputs in {dataset_name} dataset")
        if args.max_length is not None:
            cut = sum(len(p) + max(len(c), len(r)) > args.max_length
                      for p, c, r in zip(dataset["prompt_ids"], dataset["chosen_ids"], dataset["rejected_ids"]))
            if cut:
                log.warning("%s dataset: %d of %d pairs are longer than max_length %d and are cut (%s)", dataset_name,
                            cut, len(dataset), args.max_length, args.truncation_mode)
        return dataset

    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:  # the columns the trainer keeps for the collator
            super()._set_signature_columns_if_needed()
            self._signature_columns += [f"{side}_loss_mask" for side in SIDES]


def dpo_trainer(model, tokenizer, training_args: DPOConfig, rows: list[dict], peft_config=None,
                tool_format: TextFormat | None = None, quantization_config=None) -> ToolMaskedDPOTrainer:
    """``model``: a model or a model folder (loaded by TRL with ``training_args.model_init_kwargs``)."""
    if tokenizer.pad_token is None:  # TRL's own fallback, needed here because the collator is built first
        tokenizer.pad_token = tokenizer.eos_token
    collator = ToolMaskedPreferenceCollator(pad_token_id=tokenizer.pad_token_id, max_length=training_args.max_length,
                                            truncation_mode=training_args.truncation_mode,
                                            pad_to_multiple_of=training_args.pad_to_multiple_of)
    return ToolMaskedDPOTrainer(model=model, args=training_args, train_dataset=Dataset.from_list(rows),
                                processing_class=tokenizer, data_collator=collator, peft_config=peft_config,
                                quantization_config=quantization_config, tool_format=tool_format)


def main(script_args: DPOScriptArguments, training_args: DPOConfig, model_args: ModelConfig) -> None:
    checkpoint = resume_checkpoint(training_args)

    # --- data
    rows = load_pair_rows(script_args.dataset, script_args.kinds)

    # --- model: DPOTrainer loads it (and the reference model) from the path with these kwargs
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path, revision=model_args.model_revision)
    training_args.model_init_kwargs = {
        "revision": model_args.model_revision,
        "dtype": model_args.dtype,
        "attn_implementation": model_args.attn_implementation,
        **(training_args.model_init_kwargs or {}),
    }
    trainer = dpo_trainer(model_args.model_name_or_path, tokenizer, training_args, rows,
                          get_peft_config(model_args), script_args.tool_format(), get_quantization_config(model_args))

    # --- train
    result = trainer.train(resume_from_checkpoint=checkpoint)
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)

    # --- save (the adapter alone under LoRA; the tokenizer with its chat template in both cases)
    trainer.save_model(training_args.output_dir)
    trainer.save_state()  # trainer_state.json: the loss history, for reports and resume checks
    log.info("model saved to %s", training_args.output_dir)


def make_parser(subparsers: argparse._SubParsersAction | None = None) -> TrlParser:
    """TRL's script convention: the step's own parser, or its subcommand of ``python -m train``."""
    dataclass_types = (DPOScriptArguments, DPOConfig, ModelConfig)
    if subparsers is not None:
        return subparsers.add_parser("dpo", help="DPO on preference pairs of the kit's samples",
                                     dataclass_types=dataclass_types)
    return TrlParser(dataclass_types, prog="python -m train dpo")


if __name__ == "__main__":
    log_to_stdout()
    main(*make_parser().parse_args_and_config())
