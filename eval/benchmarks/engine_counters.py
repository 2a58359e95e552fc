"""vLLM's own counters, as the benchmarks read them: a stat logger handed to the engine
(``VllmEngine(stat_loggers=[...])``, which turns vLLM's scheduler stats on) that adds up

- the prefix cache: new requests, their prompt tokens (queries) and the tokens vLLM found already
  computed (hits), the figures behind its ``vllm:prefix_cache_queries`` / ``_hits`` metrics;
- the engine's steps, when the engine logs their details (``enable_logging_iteration_details``):
  decode-only steps, and steps that also computed prompt tokens (a new request's prefill: every
  step after a code round re-sends the candidate's context), with the time each kind took.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class CacheCounts:
    """Totals of vLLM's prefix-cache stats. Requests resumed after a preemption are left out, as
    vLLM's hit-rate metrics leave them out."""

    requests: int = 0
    queries: int = 0
    hits: int = 0

    def __add__(self, other: CacheCounts) -> CacheCounts:
        return CacheCounts(self.requests + other.requests, self.queries + other.queries, self.hits + other.hits)

    def __sub__(self, other: CacheCounts) -> CacheCounts:
        return CacheCounts(self.requests - other.requests, self.queries - other.queries, self.hits - other.hits)

    def report(self) -> dict:
        return {"requests": self.requests, "queried_tokens": self.queries, "hit_tokens": self.hits,
                # The prompt tokens the engine computed (not found in the cache).
                "prefilled_tokens": self.queries - self.hits,
                "hit_rate": round(self.hits / self.queries, 4) if self.queries else None}


@dataclasses.dataclass(frozen=True)
class StepCounts:
    """The engine's steps by kind and the seconds they took (vLLM's iteration details)."""

    decode_steps: int = 0
    decode_s: float = 0.0
    prefill_steps: int = 0  # steps that computed prompt tokens (with or without decodes)
    prefill_s: float = 0.0
    prefill_tokens: int = 0

    def __add__(self, other: StepCounts) -> StepCounts:
        return StepCounts(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other))))

    def __sub__(self, other: StepCounts) -> StepCounts:
        return StepCounts(*(a - b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other))))

    def report(self) -> dict:
        return {"decode_steps": self.decode_steps, "decode_s": round(self.decode_s, 2),
                "prefill_steps": self.prefill_steps, "prefill_s": round(self.prefill_s, 2),
                "prefill_tokens": self.prefill_tokens}


@dataclasses.dataclass(frozen=True)
class EngineCounts:
    cache: CacheCounts = CacheCounts()
    steps: StepCounts = StepCounts()

    def __add__(self, other: EngineCounts) -> EngineCounts:
        return EngineCounts(self.cache + other.cache, self.steps + other.steps)

    def __sub__(self, other: EngineCounts) -> EngineCounts:
        return EngineCounts(self.cache - other.cache, self.steps - other.steps)


class EngineCounters:
    """Adds up the stats vLLM's scheduler sends with its outputs. It is its own per-engine
    stat-logger factory (``vllm.v1.metrics.loggers.PerEngineStatLoggerFactory``) and logger
    (``StatLoggerBase``'s methods): every engine of a data-parallel group, and the engine that
    replaces a dead one, adds to the same totals. ``mark()`` then ``since(mark)`` gives a run's."""

    def __init__(self):
        self.totals = EngineCounts()

    def __call__(self, vllm_config, engine_index: int = 0) -> EngineCounters:
        return self

    def record(self, scheduler_stats, iteration_stats, mm_cache_stats=None, engine_idx: int = 0) -> None:
        if scheduler_stats is None:
            return
        cache = scheduler_stats.prefix_cache_stats
        steps = StepCounts()
        details = scheduler_stats.iteration_details
        if details is not None and not details.is_dummy:
            seconds = details.elapsed_ms / 1000
            steps = (StepCounts(prefill_steps=1, prefill_s=seconds, prefill_tokens=details.num_ctx_tokens)
                     if details.num_ctx_requests else StepCounts(decode_steps=1, decode_s=seconds))
        self.totals += EngineCounts(CacheCounts(cache.requests, cache.queries, cache.hits), steps)

    def log_engine_initialized(self) -> None:
        """Part of vLLM's logger interface: nothing to log."""

    def log(self) -> None:
        """Part of vLLM's logger interface: the counts are read, not logged."""

    def record_sleep_state(self, is_awake: int, level: int) -> None:
        """Part of vLLM's logger interface: sleep does not change the counts."""

    def mark(self) -> EngineCounts:
        return self.totals

    def since(self, mark: EngineCounts) -> EngineCounts:
        return self.totals - mark
