"""The serving object: one engine, one executor pool, one event loop, many problems.

``Solver.solve`` is synchronous (Kaggle's ``predict`` is) and never raises for a problem:
bad input or a failure inside the loop gives the profile's fallback answer and a log line,
because one crashed call loses a competition submission.
"""

from __future__ import annotations

import asyncio
import logging
import time

from kit.answers import get_profile
from kit.config import KitConfig
from kit.engine import Engine
from kit.executor import ExecutorPool
from kit.sctir import ProblemResult, ProblemRun
from kit.voting import VoteResult, parse_rules

log = logging.getLogger(__name__)

MAX_PROBLEM_CHARS = 100_000


class Solver:
    def __init__(self, cfg: KitConfig, engine: Engine | None = None):
        """Starts the executor pool and the engine (vLLM unless ``engine`` is given). Build
        it under ``if __name__ == "__main__"``: vLLM spawns its engine process."""
        self.cfg = cfg
        self.profile = get_profile(cfg.profile)
        self.rules = parse_rules(cfg.early_stop)
        # vLLM's AsyncLLM binds to the loop it first runs in, so every problem runs on
        # this one loop rather than a fresh asyncio.run each time.
        self._loop = asyncio.new_event_loop()
        self.pool = ExecutorPool(
            max_concurrent_cells=cfg.executor_workers(),
            cell_timeout_s=cfg.cell_timeout_s,
            memory_mb=cfg.cell_memory_mb,
            max_processes=cfg.cell_max_processes,
        )
        # The template imports sympy while the engine loads.
        self._loop.run_until_complete(self.pool.start())
        if engine is None:
            from kit.embedded_model import resolve_model_path
            from kit.engine import VllmEngine

            engine = VllmEngine(cfg, str(resolve_model_path(cfg.model)))
        self.engine = engine

    def solve(self, problem: object, problem_id: str = "", time_limit_s: float | None = None) -> ProblemResult:
        """Solve one problem within ``time_limit_s`` (default: the config's per-problem limit)."""
        limit = self.cfg.problem_time_s if time_limit_s is None else time_limit_s
        started = time.monotonic()
        try:
            prompt_ids = self._prompt_ids(problem)
            run = ProblemRun(problem_id, prompt_ids, self.cfg, self.profile, self.engine, self.pool, self.rules, limit)
            return self._loop.run_until_complete(run.solve())
        except Exception as exc:  # the serving loop answers whatever happens
            log.error("problem %r: %s; answering the fallback %r", problem_id, exc, self.profile.fallback)
            return ProblemResult(problem_id, self.profile.fallback, VoteResult(None, {}), [],
                                 time.monotonic() - started, limit, f"error: {exc}", used_fallback=True)

    def _prompt_ids(self, problem: object) -> list[int]:
        if not isinstance(problem, str):
            raise ValueError(f"problem is {type(problem).__name__}, not text")
        if not problem.strip():
            raise ValueError("problem is empty")
        if len(problem) > MAX_PROBLEM_CHARS:
            raise ValueError(f"problem has {len(problem)} characters (limit {MAX_PROBLEM_CHARS})")
        ids = self.engine.prompt_ids(problem)
        if len(ids) >= self.cfg.max_model_len:
            raise ValueError(f"prompt has {len(ids)} tokens, max_model_len is {self.cfg.max_model_len}")
        return ids

    def close(self) -> None:
        # Tasks left by a problem that was interrupted (KeyboardInterrupt) go first, then the
        # engine's background tasks, which must see their cancellation before the loop closes.
        self._cancel_leftover_tasks()
        self._loop.run_until_complete(self.pool.close())
        self.engine.shutdown()
        self._cancel_leftover_tasks()
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()

    def _cancel_leftover_tasks(self) -> None:
        leftover = asyncio.all_tasks(self._loop)
        for task in leftover:
            task.cancel()
        if leftover:
            self._loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))

    def __enter__(self) -> Solver:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
