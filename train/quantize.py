"""GPTQ quantization of a trained model, for vLLM, with ``gptqmodel`` (the maintained successor
of auto-gptq, which fails to import with transformers 5).

    python -m train quantize --config train/recipes/numina/quantize_gptq8.yaml   # GPU
    python -m train quantize --config train/recipes/smoke/quantize.yaml         # CPU, 4-bit

Numina's AIMO-1 settings: 8 bits, group size 128, activation ordering, 256 calibration samples
from the TIR data rendered with the model's chat template. One departure, on purpose: vLLM
(0.32) refuses checkpoints stored with ``desc_act=True`` ("group activation ordering is no
longer supported"), so the recipes keep the benefit of activation ordering with gptqmodel's
group-aware reordering (``act_group_aware``), which stores static groups (``desc_act=False``)
that vLLM loads. On CPU vLLM runs only 4-bit GPTQ, in bfloat16 or float16 (8-bit needs GPU
kernels). On a small CPU machine set ``GPTQMODEL_CPU_WORKERS`` to its core count.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from transformers import AutoTokenizer
from trl import TrlParser

from train.chats import load_messages
from train.common import log_to_stdout

logger = logging.getLogger(__name__)


@dataclass
class QuantizeArguments:
    model_name_or_path: str = field(metadata={"help": "The trained model folder (full weights; merge LoRA first)."})
    output_dir: str = field(metadata={"help": "Where the quantized model is written (a vLLM-loadable folder)."})
    dataset: str = field(
        default="AI-MO/NuminaMath-TIR",
        metadata={"help": "Calibration data for train.chats.load_messages: a local file or a hub dataset id."},
    )
    dataset_split: str = field(default="train", metadata={"help": "Split of a hub dataset (ignored for files)."})
    num_calibration_samples: int = field(default=256, metadata={"help": "Calibration chats (Numina: 256)."})
    max_length: int = field(default=2048, metadata={"help": "Tokens kept of each calibration chat."})
    bits: int = field(default=8, metadata={"help": "Weight bits: 8 (Numina, GPU) or 4 (the only width vLLM runs on CPU)."})
    group_size: int = field(
        default=128, metadata={"help": "Columns sharing one scale (Numina: 128); must divide the layers' input width."}
    )
    desc_act: bool = field(
        default=False,
        metadata={"help": "Store activation-ordered groups. vLLM 0.32 refuses such checkpoints: keep false and "
                          "use act_group_aware."},
    )
    act_group_aware: bool = field(
        default=True, metadata={"help": "Quantize in activation order within static groups (vLLM-loadable)."}
    )
    sym: bool = field(default=True, metadata={"help": "Symmetric quantization (what vLLM's GPTQ kernels expect)."})
    damp_percent: float = field(default=0.05, metadata={"help": "Hessian dampening, as a share of its mean diagonal."})
    batch_size: int = field(default=1, metadata={"help": "Calibration chats per forward pass."})
    seed: int = field(default=42, metadata={"help": "Seed for picking the calibration chats."})
    decontaminate: bool = field(
        default=False,
        metadata={"help": "Drop calibration chats that overlap the evaluation splits (calibration does not "
                          "train, so it is off by default)."},
    )

    def __post_init__(self) -> None:
        if self.bits not in (2, 3, 4, 8):
            raise ValueError(f"bits: must be 2, 3, 4 or 8, got {self.bits}")
        if self.group_size != -1 and self.group_size < 1:
            raise ValueError(f"group_size: must be -1 or positive, got {self.group_size}")
        if self.num_calibration_samples < 1:
            raise ValueError(f"num_calibration_samples: must be at least 1, got {self.num_calibration_samples}")


def check_model_folder(args: QuantizeArguments) -> None:
    """Fail before gptqmodel loads anything: a missing folder, a LoRA adapter, layers the group
    size does not divide."""
    folder = Path(args.model_name_or_path)
    config_path = folder / "config.json"
    if not config_path.is_file():
        hint = " (a LoRA adapter: run `python -m train merge lora` first)" if (folder / "adapter_config.json").is_file() else ""
        raise ValueError(f"model_name_or_path: no config.json in {folder}{hint}")
    config = json.loads(config_path.read_text())
    widths = {config.get("hidden_size"), config.get("intermediate_size")} - {None}
    bad = sorted(w for w in widths if args.group_size != -1 and w % args.group_size)
    if bad:
        raise ValueError(f"group_size: {args.group_size} does not divide the layer width(s) {bad} of {folder}")


def calibration_examples(args: QuantizeArguments, tokenizer) -> list[dict]:
    """``num_calibration_samples`` TIR chats, rendered with the chat template and tokenized."""
    rows = load_messages(args.dataset, split=args.dataset_split, decontaminate=args.decontaminate)
    if not rows:
        raise ValueError(f"dataset: no rows in {args.dataset}")
    random.Random(args.seed).shuffle(rows)
    if len(rows) < args.num_calibration_samples:
        logger.warning("%s has %d chats, fewer than num_calibration_samples=%d", args.dataset, len(rows),
                       args.num_calibration_samples)
    examples = []
    for row in rows[: args.num_calibration_samples]:
        text = tokenizer.apply_chat_template(row["messages"], tokenize=False)
        ids = tokenizer(text, add_special_tokens=False, truncation=True, max_length=args.max_length)["input_ids"]
        examples.append({"input_ids": ids, "attention_mask": [1] * len(ids)})
    return examples


def main(args: QuantizeArguments) -> Path:
    check_model_folder(args)
    # gptqmodel sizes its CPU thread pool at import; more workers than cores only thrash.
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(os.cpu_count() or 1))
    from gptqmodel import GPTQModel, QuantizeConfig

    # --- calibration data
    tokenizer = AutoTokenizer.from_pretrained(args.model_name_or_path)
    examples = calibration_examples(args, tokenizer)
    logger.info("%d calibration chats from %s, %d tokens on average", len(examples), args.dataset,
                sum(len(e["input_ids"]) for e in examples) // len(examples))

    # --- quantize
    started = time.monotonic()
    quantize_config = QuantizeConfig(bits=args.bits, group_size=args.group_size, desc_act=args.desc_act,
                                     act_group_aware=args.act_group_aware, sym=args.sym,
                                     damp_percent=args.damp_percent)
    model = GPTQModel.load(args.model_name_or_path, quantize_config)
    model.quantize(examples, batch_size=args.batch_size)

    # --- save (with the tokenizer and its chat template, so the kit can load the folder as is)
    model.save(args.output_dir)
    tokenizer.save_pretrained(args.output_dir)
    logger.info("%d-bit GPTQ model saved to %s in %.0f s", args.bits, args.output_dir, time.monotonic() - started)
    return Path(args.output_dir)


def make_parser(subparsers: argparse._SubParsersAction | None = None) -> TrlParser:
    """TRL's script convention: the step's own parser, or its subcommand of ``python -m train``."""
    if subparsers is not None:
        return subparsers.add_parser("quantize", help="GPTQ quantization for vLLM", dataclass_types=(QuantizeArguments,))
    return TrlParser((QuantizeArguments,), prog="python -m train quantize")


if __name__ == "__main__":
    log_to_stdout()
    main(*make_parser().parse_args_and_config())
