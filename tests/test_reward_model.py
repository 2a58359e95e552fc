"""The outcome reward model (kit/reward.py): the chat it reads, cut to its context from the front
(fast tests on the tiny model's tokenizer and the embedded model's chat template), its engine
arguments, and the real pooling engine on the tiny random-weight reward model (engine + slow).

What a random-weight reward model can show: that a one-label ``LlamaForSequenceClassification``
checkpoint loads in vLLM's pooling runner on CPU; that each trace gets one finite number; that the
number is the model's own raw head output at the last token (transformers computes the same for
the same ids, so no sigmoid was applied and no other token was read); that the same text scores the
same; that a trace cut from the front scores exactly as its kept tail (so the model read the tail,
the answer's end); that cancelling a score aborts its requests. What it cannot show: that any
score means anything -- which trace is right, or that RM@k beats a majority vote. That needs a
trained reward model (the next training issue).
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
from pathlib import Path

import pytest

from kit.config import KitConfig
from kit.embedded_model import embedded_model_dir
from kit.engine import CPU_SHARE_OF_AVAILABLE
from kit.reward import RewardScorer, chat_ids, fitted_max_len, reward_engine_args, reward_prompt
from train.__main__ import main as train
from train.tiny_model import build_tokenizer

REPO = Path(__file__).resolve().parent.parent
PROBLEM = "What is 6 * 7?"
LONG_TRACE = "".join(f"Step {i}: add {i} to the total, which is now {i * (i + 1) // 2}.\n" for i in range(80)) + (
    "So the answer is \\boxed{42}.")


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def test_a_trace_that_fits_is_read_whole(tokenizer):
    prompt = reward_prompt(tokenizer, PROBLEM, "6 * 7 = 42, so \\boxed{42}.", 256)
    assert prompt.kept_from == 0
    assert prompt.token_ids == chat_ids(tokenizer, PROBLEM, "6 * 7 = 42, so \\boxed{42}.")
    assert tokenizer.decode(prompt.token_ids) == (
        f"<|im_start|>user\n{PROBLEM}<|im_end|>\n<|im_start|>assistant\n6 * 7 = 42, so \\boxed{{42}}.<|im_end|>\n")


@pytest.mark.parametrize("max_len", [40, 64, 200, 500])
def test_a_long_trace_keeps_its_end_and_fills_the_context(tokenizer, max_len):
    assert len(chat_ids(tokenizer, PROBLEM, LONG_TRACE)) > max_len
    prompt = reward_prompt(tokenizer, PROBLEM, LONG_TRACE, max_len)
    tail = LONG_TRACE[prompt.kept_from:]
    assert max_len - 2 <= len(prompt.token_ids) <= max_len  # cut at the front only as far as needed
    assert prompt.kept_from > 0 and tail.endswith("\\boxed{42}.")
    assert prompt.token_ids == chat_ids(tokenizer, PROBLEM, tail)  # the problem and the template whole
    # One token more of the trace would not fit.
    starts = [start for start, _ in tokenizer(LONG_TRACE, return_offsets_mapping=True)["offset_mapping"]]
    one_more = starts[starts.index(prompt.kept_from) - 1]
    assert len(chat_ids(tokenizer, PROBLEM, LONG_TRACE[one_more:])) > max_len


def test_a_huge_trace_is_cut_without_tokenizing_its_head(tokenizer, monkeypatch):
    seen = []

    def counted(method):
        def counting(self, text, *args, **kwargs):
            seen.append(len(text))
            return method(self, text, *args, **kwargs)
        return counting

    for name in ("__call__", "encode"):
        monkeypatch.setattr(type(tokenizer), name, counted(getattr(type(tokenizer), name)))
    huge = LONG_TRACE * 2000  # about 10 million characters
    prompt = reward_prompt(tokenizer, PROBLEM, huge, 256)
    assert huge.endswith(huge[prompt.kept_from:]) and len(prompt.token_ids) <= 256
    assert seen and max(seen) <= 64 * 256  # the end's window only, never the whole trace


def test_a_cut_through_multibyte_text_keeps_an_exact_suffix(tokenizer):
    trace = "Let x = 7 → x² = 49; ∑ über alle Schritte ≈ 42 — 答案是 42。\n" * 30 + "\\boxed{42}"
    prompt = reward_prompt(tokenizer, PROBLEM, trace, 100)
    assert len(prompt.token_ids) <= 100 and prompt.kept_from > 0
    assert prompt.token_ids == chat_ids(tokenizer, PROBLEM, trace[prompt.kept_from:])
    assert "\ufffd" not in tokenizer.decode(prompt.token_ids)  # no character split in two


def test_the_reward_models_own_template_is_used_with_its_default_system_turn():
    from transformers import AutoTokenizer

    smollm = AutoTokenizer.from_pretrained(embedded_model_dir())
    prompt = reward_prompt(smollm, PROBLEM, LONG_TRACE, 120)
    text = smollm.decode(prompt.token_ids)
    # SmolLM2's template adds its own system turn when the chat has none; it is kept, like the problem.
    assert text.startswith("<|im_start|>system\n") and f"<|im_start|>user\n{PROBLEM}<|im_end|>" in text
    assert text.endswith("\\boxed{42}.<|im_end|>\n") and len(prompt.token_ids) <= 120


def test_a_problem_too_long_for_the_context_is_refused_naming_the_limit(tokenizer):
    with pytest.raises(ValueError, match="reward_model.max_model_len 32: the problem .* takes \\d+ tokens"):
        reward_prompt(tokenizer, "Compute the sum of every integer below one thousand. " * 4, "\\boxed{1}", 32)


def reward_folder(tmp_path: Path, **config) -> Path:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", **config}))
    return tmp_path


def test_the_context_is_capped_at_the_reward_models_own_with_a_warning(tmp_path, caplog):
    cfg = KitConfig(reward_model={"path": str(reward_folder(tmp_path, max_position_embeddings=2048)),
                                  "max_model_len": 4096})
    with caplog.at_level(logging.WARNING, logger="kit.reward"):
        assert fitted_max_len(cfg) == 2048
    assert "4096" in caplog.text and "2048" in caplog.text


def test_engine_args_ask_for_the_pooling_runner_within_what_this_cpu_gives(tmp_path):
    from vllm.utils.cpu_resource_utils import get_allowed_cpu_list, get_memory_node_info

    cfg = KitConfig(dtype="float32", enforce_eager=True,
                    reward_model={"path": str(reward_folder(tmp_path)), "gpu_memory_utilization": 1.0})
    args = reward_engine_args(cfg, 512)
    assert (args.model, args.runner, args.max_model_len, args.dtype) == (str(tmp_path), "pooling", 512, "float32")
    info = get_memory_node_info(get_allowed_cpu_list()[0].numa_node)
    # Within 5%: the memory available moves between the two readings.
    assert args.gpu_memory_utilization <= 1.05 * CPU_SHARE_OF_AVAILABLE * info.available_memory / info.total_memory


def test_a_scorer_without_a_reward_model_is_refused():
    with pytest.raises(ValueError, match="reward_model.path is empty"):
        RewardScorer(KitConfig())


# One engine start for both engine tests: the Solver builds the RewardScorer on the real pooling
# engine (on its own event loop, as in a run); the scorer is first exercised directly on that
# loop, then the Solver solves with the scripted policy and the rm vote.
SCORE_AND_SOLVE = """
import asyncio, json, sys, time
sys.path.insert(0, "tests")
from kit.config import KitConfig
from kit.solver import Solver
from scripted_engine import ScriptedEngine

PROBLEM, LONG = sys.argv[2], sys.argv[3]
ANSWERS = ["42", "42", "41", "40", "41"]

async def score_directly(scorer):
    tail = LONG[scorer.prompt(PROBLEM, LONG).kept_from:]
    texts = ["6 * 7 = 42, so \\\\boxed{42}.", "6 * 7 = 42, so \\\\boxed{42}.", "I think \\\\boxed{41}.", LONG, tail]
    started = time.monotonic()
    scores = await scorer.score(PROBLEM, texts, "rm-test")
    scored = time.monotonic()
    # Cancel a large score while its requests are in the engine: none may be left running.
    task = asyncio.create_task(scorer.score(PROBLEM, [LONG] * 64, "rm-cancel"))
    while scorer.engine.get_num_unfinished_requests() == 0:
        await asyncio.sleep(0)
    in_flight = scorer.engine.get_num_unfinished_requests()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    left = scorer.engine.get_num_unfinished_requests()
    again = await scorer.score(PROBLEM, texts[:1], "rm-again")
    return {"scores": scores, "ids": [scorer.prompt(PROBLEM, t).token_ids for t in texts], "tail": tail,
            "in_flight": in_flight, "left_after_cancel": left, "cancelled": task.cancelled(), "again": again,
            "score_s": scored - started}

if __name__ == "__main__":
    cfg = KitConfig(dtype="float32", enforce_eager=True, num_samples=5, early_stop=[], vote={"method": "rm"},
                    reward_model={"path": sys.argv[1], "max_model_len": 128})
    engine = ScriptedEngine(lambda c, s: f"6 * 7 is {ANSWERS[c]}, so \\\\boxed{{{ANSWERS[c]}}}.")
    started = time.monotonic()
    with Solver(cfg, engine=engine) as solver:  # builds the RewardScorer on the real pooling engine
        direct = solver.run_coroutine(score_directly(solver.reward))
        direct["start_s"] = time.monotonic() - started - direct["score_s"]
        result = solver.solve("What is 6 * 7?", "p0", time_limit_s=120)
    print("RESULT", json.dumps({"direct": direct, "answer": result.answer, "method": result.vote.method,
                                "weights": result.vote.weights, "scores": [c.reward_score for c in result.candidates],
                                "texts": [c.text for c in result.candidates]}))
"""


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("rm") / "tiny-reward"
    train(["tiny-model", "--arch", "reward", "--out", str(model_dir)])
    # In a subprocess: vLLM spawns its engine process, which needs a __main__ guard.
    proc = subprocess.run([sys.executable, "-c", SCORE_AND_SOLVE, str(model_dir), PROBLEM, LONG_TRACE],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return model_dir, json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[7:])


@pytest.mark.engine
@pytest.mark.slow
def test_the_tiny_reward_model_scores_through_vllms_pooling_runner(scored):
    import torch
    from transformers import LlamaForSequenceClassification

    model_dir, result = scored
    result = result["direct"]
    print(f"reward model: engine start {result['start_s']:.1f} s, 5 traces scored in {result['score_s']:.3f} s")
    scores = result["scores"]
    assert len(scores) == 5 and all(math.isfinite(s) for s in scores)
    same, _, other, long, tail = scores
    assert same == scores[1] and result["again"] == [same]  # the same text, the same score, every time
    assert other != same  # a different text is read as different
    assert len(result["ids"][3]) <= 128 and LONG_TRACE.endswith(result["tail"]) and long == tail
    # The model's own raw output at the last token: transformers gives the same numbers for the same ids.
    model = LlamaForSequenceClassification.from_pretrained(model_dir).eval()
    with torch.no_grad():
        expected = [model(torch.tensor([ids])).logits[0, 0].item() for ids in result["ids"]]
    assert scores == pytest.approx(expected, rel=1e-3, abs=1e-5)
    assert result["in_flight"] > 0 and result["cancelled"] and result["left_after_cancel"] == 0


@pytest.mark.engine
@pytest.mark.slow
def test_the_solver_scores_every_finished_candidate_and_the_rm_vote_uses_the_scores(scored):
    # The policy is scripted (its answers are known); the reward model is the real engine. Random
    # weights make the scores arbitrary, so the test checks that they are finite, one per finished
    # candidate, and that the vote ranks answers by them (rm_aggregate best: the top-scored wins).
    _, result = scored
    scores = result["scores"]
    assert len(scores) == 5 and all(s is not None and math.isfinite(s) for s in scores)
    assert result["method"] == "rm"
    best = max(range(5), key=lambda i: (scores[i], -i))
    assert result["answer"] == result["texts"][best].split("{")[1].split("}")[0]
    assert result["weights"][result["answer"]] == pytest.approx(scores[best])
