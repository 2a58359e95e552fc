"""The throughput benchmark's baseline: the raw engine (vLLM itself, no SC-TIR loop) generating
fixed numbers of tokens with the kit's sampling settings: ``ignore_eos``, no stop string,
exactly the lengths asked for. With ``logprobs`` it asks vLLM for that many top logprobs per
token and turns them into entropies as the kit does (``kit.confidence.token_entropy``), timed
apart, so that the cost of logprobs to the kit is measured on the same path."""

from __future__ import annotations

import asyncio
import dataclasses
import time

from kit.confidence import token_entropy
from kit.engine import VllmEngine
from kit.sctir import ProblemResult


@dataclasses.dataclass
class RawStep:
    tokens: int
    entropy_s: float  # spent computing the entropies (0 without logprobs)


async def generate_fixed(engine: VllmEngine, token_ids: list[int], num_tokens: int, request_id: str,
                         logprobs: int = 0) -> RawStep:
    """Exactly ``num_tokens`` tokens with the kit's sampling (temperature, top_p, top_k, min_p), no
    stop string and no EOS; with ``logprobs`` > 0, that many top logprobs per token, and each
    token's entropy computed from them."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt
    from vllm.sampling_params import RequestOutputKind

    cfg = engine.cfg
    params = SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k, min_p=cfg.min_p,
                            max_tokens=num_tokens, min_tokens=num_tokens, ignore_eos=True,
                            logprobs=logprobs or None, output_kind=RequestOutputKind.FINAL_ONLY)
    final = None
    async for output in engine.engine.generate(TokensPrompt(prompt_token_ids=token_ids), params, request_id):
        final = output
    completion = final.outputs[0]
    entropy_s = 0.0
    if logprobs:
        started = time.perf_counter()
        entropies = [token_entropy(lp.logprob for lp in position.values()) for position in completion.logprobs]
        entropy_s = time.perf_counter() - started
        if len(entropies) != len(completion.token_ids):
            raise RuntimeError(f"request {request_id}: {len(entropies)} logprob positions for "
                               f"{len(completion.token_ids)} tokens")
    return RawStep(len(completion.token_ids), entropy_s)


@dataclasses.dataclass
class RawRun:
    wall_s: float
    tokens: int
    entropy_s: float


def run_raw(solver, engine: VllmEngine, problems, results: list[ProblemResult], logprobs: int = 0) -> RawRun:
    """The raw engine generating, for each problem, the tokens each kit candidate generated,
    all of a problem's requests at once (as the kit starts its N candidates)."""

    async def one(prompt_ids: list[int], lengths: list[int], pid: str) -> list[RawStep]:
        jobs = [generate_fixed(engine, prompt_ids, n, f"raw-lp{logprobs}-{pid}-{i}", logprobs)
                for i, n in enumerate(lengths) if n > 0]
        return await asyncio.gather(*jobs)

    wall, steps = 0.0, []
    for p, result in zip(problems, results, strict=True):
        prompt_ids = engine.prompt_ids(p.problem)
        started = time.monotonic()
        steps += solver.run_coroutine(one(prompt_ids, [c.generated_tokens for c in result.candidates], p.id))
        wall += time.monotonic() - started
    return RawRun(wall, sum(s.tokens for s in steps), sum(s.entropy_s for s in steps))
