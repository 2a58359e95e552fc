"""An outcome reward model's score of each finished candidate, for ``vote.method: rm``.

The reward model is a sequence-classification checkpoint with one output (``*ForSequenceClassification``,
``num_labels=1``, e.g. Skywork-Reward's ``LlamaForSequenceClassification``; Qwen2.5-Math-RM's own
``Qwen2ForRewardModel`` is a per-token head, vLLM's ``token_classify``, not served here), served by
vLLM 0.32's pooling runner (``AsyncEngineArgs(runner="pooling")``) in its own ``AsyncLLM``, beside
the policy's engine: on GPU it takes ``reward_model.gpu_memory_utilization`` of each device (start it
after the policy's, which has taken its own share by then); on CPU that share is capped at what vLLM
can get, as the policy's is (``kit.engine.fit_memory_share``).

What the model reads: the chat (user: the problem, assistant: the candidate's trace text) rendered
with the reward model's *own* chat template, not the policy's. A request is
``PoolingParams(task="classify", use_activation=False)``: vLLM reads the classifier head at the last
token and returns its raw output (with activation, its default, a one-label head would come back
through a sigmoid), so the score is the model's logit; ``kit.voting`` applies its own sigmoid where it
sums scores.

A trace longer than ``reward_model.max_model_len`` (capped at the model's own maximum) keeps its
*end*, where the answer is: its tokens are dropped from the front, the kept text is an exact suffix
of the trace, and a log line says how much was kept. The problem and the template are never cut;
a problem too long to leave the trace a single token is refused (``ValueError``). Only the trace's
end is tokenized to find the cut (about 20 ms for a 90k-token trace cut to 4096 with SmolLM2's tokenizer).

Like ``kit.engine.VllmEngine``, the scorer must be built under ``if __name__ == "__main__"`` (or in a
spawned process): vLLM starts its engine core as a separate process.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from dataclasses import dataclass
from typing import Protocol

from kit.config import KitConfig
from kit.engine import fit_memory_share, model_max_len, shutdown_async_llm

log = logging.getLogger(__name__)


# To find the cut, a long trace's end is tokenized at first over this many characters per token
# of room, the window growing fourfold while it holds too few tokens: the head is never tokenized.
CHARS_PER_TOKEN_GUESS = 4


@dataclass(frozen=True)
class RewardPrompt:
    """The token ids the reward model reads for one candidate."""

    token_ids: list[int]
    kept_from: int  # index into the trace text where the kept part starts: 0 when it was not cut


def chat_ids(tokenizer, problem: str, trace: str) -> list[int]:
    """The chat (user: ``problem``, assistant: ``trace``) in the tokenizer's chat template, as ids."""
    messages = [{"role": "user", "content": problem}, {"role": "assistant", "content": trace}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    # The template writes any BOS itself, as the policy's prompts are encoded (kit.engine).
    return tokenizer.encode(text, add_special_tokens=False)


def reward_prompt(tokenizer, problem: str, trace: str, max_len: int) -> RewardPrompt:
    """The chat for ``trace`` in at most ``max_len`` tokens: whole when it fits, else the trace's
    tokens are dropped from the front until it does (the kept text is ``trace[kept_from:]``, cut at
    a token boundary; needs a fast tokenizer's offsets). Raises ``ValueError`` when the problem and
    the template alone leave no room for one token of the trace."""
    room = max_len - len(chat_ids(tokenizer, problem, ""))
    if room < 1:
        raise ValueError(f"reward_model.max_model_len {max_len}: the problem in the reward model's chat template "
                         f"takes {max_len - room} tokens, leaving no room for the trace")
    window = CHARS_PER_TOKEN_GUESS * room
    while True:
        start = max(0, len(trace) - window)
        offsets = tokenizer(trace[start:], add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        if len(offsets) > room or start == 0:
            break
        window *= 4
    if start == 0 and len(offsets) <= room:
        ids = chat_ids(tokenizer, problem, trace)
        if len(ids) <= max_len:
            return RewardPrompt(ids, 0)
    keep = min(room, len(offsets))
    while True:
        # Tokens re-merge at the cut and around the template, so the rendered length is measured, not assumed.
        kept_from = start + offsets[-keep][0]
        ids = chat_ids(tokenizer, problem, trace[kept_from:])
        if len(ids) <= max_len or keep == 1:
            break
        keep = max(1, keep - (len(ids) - max_len))
    if len(ids) > max_len:
        raise ValueError(f"reward_model.max_model_len {max_len}: the trace's last token alone makes the chat "
                         f"{len(ids)} tokens long")
    return RewardPrompt(ids, kept_from)


def reward_engine_args(cfg: KitConfig, max_model_len: int):
    """vLLM's ``AsyncEngineArgs`` for the reward model: the pooling runner over
    ``cfg.reward_model.path``, with the policy's dtype, eager mode, seed and tensor parallelism."""
    import torch
    from vllm import AsyncEngineArgs

    rm = cfg.reward_model
    return AsyncEngineArgs(
        model=rm.path,
        runner="pooling",
        dtype=cfg.dtype,
        tensor_parallel_size=cfg.tensor_parallel_size or max(1, torch.cuda.device_count()),
        gpu_memory_utilization=fit_memory_share(rm.gpu_memory_utilization),
        max_model_len=max_model_len,
        enforce_eager=cfg.enforce_eager,
        seed=cfg.seed,
        disable_log_stats=True,
    )


def fitted_max_len(cfg: KitConfig) -> int:
    """``reward_model.max_model_len``, capped at the reward model's own maximum (warned)."""
    rm = cfg.reward_model
    limit = model_max_len(rm.path)
    if limit is None or rm.max_model_len <= limit:
        return rm.max_model_len
    log.warning("reward_model.max_model_len %d is more than the model at %s takes (%d): using %d",
                rm.max_model_len, rm.path, limit, limit)
    return limit


class Scorer(Protocol):
    """What the solver needs of a reward model (a scripted one stands in for it in unit tests)."""

    async def score(self, problem: str, completions: list[str], request_id: str) -> list[float]: ...

    def shutdown(self) -> None: ...


class RewardScorer:
    """The reward model in its own vLLM ``AsyncLLM`` (pooling runner): one finite score per trace."""

    def __init__(self, cfg: KitConfig):
        if not cfg.reward_model.path:
            raise ValueError("reward_model.path is empty: there is no reward model to serve")
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        from transformers import AutoTokenizer
        from vllm import PoolingParams
        from vllm.inputs import TokensPrompt
        from vllm.v1.engine.async_llm import AsyncLLM

        self.max_model_len = fitted_max_len(cfg)
        self.tokenizer = AutoTokenizer.from_pretrained(cfg.reward_model.path)
        self._tokens_prompt = TokensPrompt
        self._pooling_params = PoolingParams
        self.engine = AsyncLLM.from_engine_args(reward_engine_args(cfg, self.max_model_len))

    @property
    def errored(self) -> bool:
        """True once the engine core has died (or the scorer was shut down)."""
        return self.engine is None or self.engine.errored

    def prompt(self, problem: str, trace: str) -> RewardPrompt:
        return reward_prompt(self.tokenizer, problem, trace, self.max_model_len)

    async def score(self, problem: str, completions: list[str], request_id: str) -> list[float]:
        """The reward model's score of each completion (the trace text) of ``problem``, in order.
        Requests are ``{request_id}-rm-{i}``; cancelling the awaiting task, or one request failing,
        aborts the others inside vLLM. Raises ``ValueError`` for a problem too long for
        ``max_model_len`` or a score that is not finite."""
        prompts = [self.prompt(problem, trace) for trace in completions]
        for i, prompt in enumerate(prompts):
            if prompt.kept_from:
                log.info("reward model: %s-rm-%d reads the last %d of the trace's %d characters (max_model_len %d)",
                         request_id, i, len(completions[i]) - prompt.kept_from, len(completions[i]),
                         self.max_model_len)
        try:
            # A task group waits for every request: a cancelled or failed score leaves none running.
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._score_one(prompt.token_ids, f"{request_id}-rm-{i}"))
                         for i, prompt in enumerate(prompts)]
        except ExceptionGroup as failed:
            if len(failed.exceptions) > 1:
                log.warning("reward model: %s: %d requests failed; raising the first: %r", request_id,
                            len(failed.exceptions), list(failed.exceptions))
            # The engine's own exception, not chained, so its cause stays its own: callers tell a dead
            # engine by it (kit.engine.is_engine_dead).
            raise failed.exceptions[0]
        return [task.result() for task in tasks]

    async def _score_one(self, token_ids: list[int], request_id: str) -> float:
        # AsyncLLM.encode aborts the request when the task awaiting it is cancelled.
        params = self._pooling_params(task="classify", use_activation=False)
        output = None
        async for output in self.engine.encode(self._tokens_prompt(prompt_token_ids=token_ids), params, request_id):
            pass
        values = output.outputs.data.tolist()
        if len(values) != 1:
            raise ValueError(f"reward model: request {request_id} got {len(values)} numbers: a reward model has one "
                             f"label (num_labels=1)")
        (value,) = values
        if not math.isfinite(value):
            raise ValueError(f"reward model: request {request_id} scored {value} (not finite)")
        return value

    def shutdown(self) -> None:
        shutdown_async_llm(self)
