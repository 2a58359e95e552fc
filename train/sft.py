"""Supervised fine-tuning, both stages of the Numina recipe (CoT, then TIR), with TRL's SFTTrainer.

    python -m train sft --config train/recipes/smoke/sft_cot.yaml
    accelerate launch --config_file train/recipes/accelerate/zero3_8gpu.yaml \\
        -m train.sft --config train/recipes/numina/sft_cot.yaml

A recipe is a YAML file whose keys are fields of ``SFTScriptArguments`` (below), TRL's
``SFTConfig`` (which extends ``transformers.TrainingArguments``) and TRL's ``ModelConfig``;
command-line flags override it. A key that belongs to none of them is an error, raised before
any model loads. Training resumes as every trainer of the chain does (``train.common.resume_checkpoint``):
from ``resume_from_checkpoint`` when set, else from the last ``checkpoint-*`` in ``output_dir``.

The data goes through ``train.chats``: rows become chats, chats are rendered with the tokenizer's
chat template and tokenized here into ``input_ids``/``labels``. TIR traces are rendered in the
tool-call format of the kit config the model will run under (the recipe's ``kit:`` mapping, as
``train.common`` reads it: its ``tool_format`` and ``output_max_chars``). Pre-tokenizing (rather
than TRL's ``assistant_only_loss``) is what lets the labels also mask the tool outputs *inside* an
assistant turn: the kit writes those at inference, the model must not learn to predict them.
SFTTrainer keeps a given ``labels`` column as is, through packing too.

Chats are never cut to ``max_length`` one by one: with packing that chunks the token stream
(``wrapped``, Numina's concatenate-then-chunk, or ``bfd_split``) every token is trained on, as
TRL intends; where a chat must fit one sequence (no packing, or ``bfd``, which TRL would cut
at ``max_length``), a longer chat is dropped, since cutting it would keep its problem and lose
its answer and end of turn. The log says how many chats and labelled tokens are kept.

With ``use_peft: true`` only the adapter is saved; ``python -m train merge lora`` merges it.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field

from datasets import Dataset
from transformers import AutoTokenizer
from trl import ModelConfig, SFTConfig, SFTTrainer, TrlParser, get_peft_config, get_quantization_config

from train.chats import IGNORE_INDEX, TextFormat, load_messages, tokenize_with_mask, training_format
from train.common import KIT_HELP, kit_config, kit_mapping, log_to_stdout, resume_checkpoint

logger = logging.getLogger(__name__)


@dataclass
class SFTScriptArguments:
    """What the recipe says about the data; the rest is SFTConfig and ModelConfig."""

    dataset: str = field(
        metadata={"help": "Training data for train.chats.load_messages: a local .jsonl/.csv/.parquet file "
                          "or a hub dataset id (e.g. AI-MO/NuminaMath-CoT)."},
    )
    dataset_split: str = field(default="train", metadata={"help": "Split of a hub dataset (ignored for files)."})
    max_samples: int | None = field(
        default=None, metadata={"help": "Read at most this many rows (before filtering); None reads them all."}
    )
    mask_tool_outputs: bool = field(
        default=True,
        metadata={"help": "Exclude the tool outputs of TIR traces (```output blocks, or the tagged format's "
                          "replies) from the loss: the kit writes them at inference, the model does not."},
    )
    decontaminate: bool = field(
        default=True, metadata={"help": "Drop rows sharing a 13-gram with the evaluation splits (train.chats)."}
    )
    chat_template: str | None = field(
        default=None,
        metadata={"help": "Jinja chat template to set on the tokenizer (and save with the model), for base "
                          "models that ship none; None keeps the tokenizer's own."},
    )
    kit: dict | str | None = field(
        default_factory=dict,
        metadata={"help": KIT_HELP + " The kit config the trained model will run under: TIR traces are rendered in "
                                     "its tool_format (fences or tagged; harmony has no training rendering) with "
                                     "outputs truncated at its output_max_chars, as the kit shows them."},
    )

    def __post_init__(self) -> None:
        self.kit = kit_mapping(self.kit)
        self.tool_format()  # a bad kit setting fails now, while the recipe is parsed

    def tool_format(self) -> TextFormat:
        return training_format(kit_config(self.kit))


# Packing strategies that chunk the token stream, so a chat longer than max_length loses nothing.
CHUNKING_STRATEGIES = ("wrapped", "bfd_split")


def _labelled(example: dict) -> int:
    return sum(label != IGNORE_INDEX for label in example["labels"])


def tokenized_dataset(script_args: SFTScriptArguments, tokenizer, training_args: SFTConfig) -> Dataset:
    """The recipe's rows as whole ``input_ids``/``labels``, minus the chats longer than
    ``max_length`` when they must fit one sequence (see the module docstring)."""
    tool_format = script_args.tool_format()
    rows = load_messages(script_args.dataset, split=script_args.dataset_split, limit=script_args.max_samples,
                         tool_format=tool_format, decontaminate=script_args.decontaminate)
    examples = [tokenize_with_mask(tokenizer, row["messages"], script_args.mask_tool_outputs, tool_format)
                for row in rows]
    max_length = training_args.max_length
    chunked = training_args.packing and training_args.packing_strategy in CHUNKING_STRATEGIES
    kept = [{"input_ids": ex["input_ids"], "labels": ex["labels"]} for ex in examples
            if chunked or max_length is None or len(ex["input_ids"]) <= max_length]
    how = (f"packing {training_args.packing_strategy} chunks long chats" if chunked
           else f"chats longer than max_length {max_length} dropped")
    logger.info("%s: kept %d of %d chats, %d of %d labelled tokens (%s)", script_args.dataset, len(kept),
                len(examples), sum(map(_labelled, kept)), sum(map(_labelled, examples)), how)
    if len(kept) < len(examples):
        logger.warning("%s: %d chats are longer than max_length %s and were dropped; raise max_length or pack "
                       "with packing_strategy %s to train on them", script_args.dataset,
                       len(examples) - len(kept), max_length, " or ".join(CHUNKING_STRATEGIES))
    if not kept:
        raise ValueError(f"no training examples left from {script_args.dataset}")
    return Dataset.from_list(kept)


def main(script_args: SFTScriptArguments, training_args: SFTConfig, model_args: ModelConfig) -> None:
    checkpoint = resume_checkpoint(training_args)

    # --- tokenizer and data
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path, revision=model_args.model_revision)
    if script_args.chat_template is not None:
        tokenizer.chat_template = script_args.chat_template
    if tokenizer.pad_token is None:
        # Base models (deepseek-math) have none; the collator pads with it and labels padding -100 anyway.
        tokenizer.pad_token = tokenizer.eos_token
    train_dataset = tokenized_dataset(script_args, tokenizer, training_args)

    # --- model: SFTTrainer loads it from the path with these kwargs (and quantizes it for QLoRA)
    training_args.model_init_kwargs = {
        "revision": model_args.model_revision,
        "dtype": model_args.dtype,
        "attn_implementation": model_args.attn_implementation,
        **(training_args.model_init_kwargs or {}),
    }
    trainer = SFTTrainer(
        model=model_args.model_name_or_path,
        args=training_args,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        quantization_config=get_quantization_config(model_args),
    )

    # --- train
    result = trainer.train(resume_from_checkpoint=checkpoint)
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)

    # --- save (the adapter alone under LoRA; the tokenizer with its chat template in both cases)
    trainer.save_model(training_args.output_dir)
    trainer.save_state()
    logger.info("model saved to %s", training_args.output_dir)
    trainer.end()


def make_parser(subparsers: argparse._SubParsersAction | None = None) -> TrlParser:
    """TRL's script convention: the step's own parser, or its subcommand of ``python -m train``.
    Parsing raises on a recipe key that no dataclass knows, naming it: before anything heavy."""
    dataclass_types = (SFTScriptArguments, SFTConfig, ModelConfig)
    if subparsers is not None:
        return subparsers.add_parser("sft", help="supervised fine-tuning (CoT or TIR)", dataclass_types=dataclass_types)
    return TrlParser(dataclass_types, prog="python -m train sft")


if __name__ == "__main__":
    log_to_stdout()
    main(*make_parser().parse_args_and_config())
