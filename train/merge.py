"""Merge checkpoints: a LoRA adapter into its base model, or a weighted average of full models.

    python -m train merge lora --base B --adapter A --out O
    python -m train merge linear --models M1 M2 --weights 0.3 0.7 --out O

``linear`` is the checkpoint averaging NVIDIA's AIMO-2 winner used (0.3 CoT + 0.7 TIR): every
tensor of the output is sum_i w_i * tensor_i, computed in float32 and stored in the first
model's dtype. Models must share the architecture (same tensor names and shapes); the first
model's config, tokenizer and chat template are kept.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer


def merge_lora(base: str | Path, adapter: str | Path, out: str | Path) -> Path:
    """Fold a PEFT adapter into its base model's weights and save a plain checkpoint."""
    from peft import PeftModel

    # The tokenizer comes from the adapter folder: SFT saved it there, with the chat template
    # training used, which may differ from the base model's.
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    model = AutoModelForCausalLM.from_pretrained(base, dtype="auto")
    dtype = model.dtype
    # float32 for the merge arithmetic (bf16 would round the small LoRA delta away); the base's
    # own dtype is restored before saving.
    merged = PeftModel.from_pretrained(model.float(), adapter).merge_and_unload().to(dtype)
    merged.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return Path(out)


def merge_linear(models: list[str | Path], weights: list[float], out: str | Path) -> Path:
    """Save the weighted average of same-architecture checkpoints' state dicts."""
    if len(models) != len(weights) or len(models) < 2:
        raise ValueError(f"need two or more models and one weight each, got {len(models)} models, "
                         f"{len(weights)} weights")
    if abs(sum(weights) - 1.0) > 1e-6:
        raise ValueError(f"weights must sum to 1, got {weights} (sum {sum(weights)})")
    first = AutoModelForCausalLM.from_pretrained(models[0], dtype="auto")
    dtype = next(first.parameters()).dtype
    reference = first.state_dict()
    merged = {name: weights[0] * tensor.float() for name, tensor in reference.items()}
    for path, weight in zip(models[1:], weights[1:]):
        other = AutoModelForCausalLM.from_pretrained(path, dtype="auto").state_dict()
        if other.keys() != reference.keys():
            missing, extra = sorted(reference.keys() - other.keys()), sorted(other.keys() - reference.keys())
            raise ValueError(f"{path} has a different architecture from {models[0]}: "
                             f"missing {missing[:5]}, extra {extra[:5]}")
        for name, tensor in other.items():
            if tensor.shape != reference[name].shape:
                raise ValueError(f"shape mismatch for {name}: {tuple(reference[name].shape)} in {models[0]}, "
                                 f"{tuple(tensor.shape)} in {path}")
            merged[name] += weight * tensor.float()
    first.load_state_dict({name: tensor.to(dtype) for name, tensor in merged.items()})
    first.save_pretrained(out)
    AutoTokenizer.from_pretrained(models[0]).save_pretrained(out)
    return Path(out)


def make_parser(subparsers: argparse._SubParsersAction | None = None) -> argparse.ArgumentParser:
    """TRL's script convention: the step's own parser, or its subcommand of ``python -m train``."""
    kwargs = {"description": __doc__, "formatter_class": argparse.RawDescriptionHelpFormatter}
    parser = (subparsers.add_parser("merge", help="merge a LoRA adapter, or average checkpoints", **kwargs)
              if subparsers is not None else argparse.ArgumentParser(prog="python -m train merge", **kwargs))
    sub = parser.add_subparsers(dest="method", required=True)
    lora = sub.add_parser("lora", help="merge a LoRA adapter into its base model")
    lora.add_argument("--base", required=True, help="base model folder (what the adapter was trained on)")
    lora.add_argument("--adapter", required=True, help="adapter folder written by train.sft with use_peft")
    lora.add_argument("--out", required=True, help="output folder")
    linear = sub.add_parser("linear", help="weighted average of same-architecture checkpoints")
    linear.add_argument("--models", nargs="+", required=True, help="model folders")
    linear.add_argument("--weights", nargs="+", type=float, required=True, help="one weight per model, sum 1")
    linear.add_argument("--out", required=True, help="output folder")
    return parser


def main(args: argparse.Namespace) -> None:
    if args.method == "lora":
        path = merge_lora(args.base, args.adapter, args.out)
    else:
        path = merge_linear(args.models, args.weights, args.out)
    print(f"merged model written to {path}")


if __name__ == "__main__":
    main(make_parser().parse_args())
