"""The serving object: one engine, one executor pool, one event loop, many problems.

``Solver.solve`` is synchronous (Kaggle's ``predict`` is) and never raises for a problem:
bad input or a failure inside the loop gives the profile's fallback answer and a log line,
because one crashed call loses a competition submission.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from kit.answers import get_profile
from kit.config import KitConfig
from kit.engine import Engine
from kit.executor import ExecutorPool
from kit.sctir import ProblemResult, ProblemRun
from kit.voting import VoteResult, parse_rules

log = logging.getLogger(__name__)

MAX_PROBLEM_CHARS = 100_000
# How long past its deadline a problem may run before solve gives up on it and answers the
# fallback (the deadline normally ends it within a second or two).
SOLVE_GRACE_S = 30.0


class Solver:
    def __init__(self, cfg: KitConfig, engine: Engine | None = None):
        """Starts the executor pool and the engine (vLLM unless ``engine`` is given). Build
        it under ``if __name__ == "__main__"``: vLLM spawns its engine process."""
        self.cfg = cfg
        self.profile = get_profile(cfg.profile)
        self.rules = parse_rules(cfg.early_stop)
        # One event loop, on a thread of its own, runs every problem: vLLM's AsyncLLM binds
        # to the loop it first runs in, and a caller's thread may already run a loop of its
        # own (a notebook's main thread) or change from call to call (gRPC workers).
        self._loop = asyncio.new_event_loop()
        self._closing = False
        self._loop_thread = threading.Thread(target=self._serve_loop, name="kit-solver-loop", daemon=True)
        self._loop_thread.start()
        self.pool = ExecutorPool(
            max_concurrent_cells=cfg.executor_workers(),
            cell_timeout_s=cfg.cell_timeout_s,
            memory_mb=cfg.cell_memory_mb,
            max_processes=cfg.cell_max_processes,
        )
        try:
            # The template imports sympy while the engine loads.
            self.run_coroutine(self.pool.start())
            self.engine = engine if engine is not None else self.run_coroutine(self._start_vllm())
        except BaseException:
            # A model that fails to load must not leave the sandbox template running.
            self.run_coroutine(self.pool.close())
            self._stop_loop()
            raise

    async def _start_vllm(self) -> Engine:
        # Built on the loop's thread, so the engine's background tasks live on that loop.
        from kit.embedded_model import resolve_model_path
        from kit.engine import VllmEngine

        return VllmEngine(self.cfg, str(resolve_model_path(self.cfg.model)))

    def _serve_loop(self) -> None:
        while not self._closing:
            try:
                self._loop.run_forever()
            except BaseException:  # a KeyboardInterrupt raised inside a task: its caller got it
                continue

    def run_coroutine(self, coro, timeout_s: float | None = None):
        """Run ``coro`` on the solver's loop (where the engine lives) and wait for it; an
        interrupted or timed-out wait cancels it."""
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout_s)
        except BaseException:
            future.cancel()
            raise

    def solve(self, problem: object, problem_id: str = "", time_limit_s: float | None = None) -> ProblemResult:
        """Solve one problem within ``time_limit_s`` (default: the config's per-problem limit)."""
        started = time.monotonic()
        try:
            return self.solve_many([(problem_id, problem)], time_limit_s=time_limit_s)[0]
        except TimeoutError as exc:  # the loop itself stalled: still answer
            limit = self.cfg.problem_time_s if time_limit_s is None else time_limit_s
            return self._fallback(problem_id, started, limit, exc)

    def solve_many(self, problems: list[tuple[str, object]], in_flight: int = 1,
                   time_limit_s: float | None = None) -> list[ProblemResult]:
        """Solve ``(problem_id, problem)`` pairs, up to ``in_flight`` at once (each with its own
        deadline), in order. Several problems at once keep a large batch, or several
        data-parallel replicas, busy when sampling training data; a competition solves one."""
        limit = self.cfg.problem_time_s if time_limit_s is None else time_limit_s
        slots = asyncio.Semaphore(max(1, in_flight))

        async def one(problem_id: str, problem: object) -> ProblemResult:
            async with slots:
                started = time.monotonic()
                try:
                    prompt_ids = self._prompt_ids(problem)
                    run = ProblemRun(problem_id, prompt_ids, self.cfg, self.profile, self.engine, self.pool,
                                     self.rules, limit)
                    # The problem's own deadline ends it; this timeout is the net under that.
                    async with asyncio.timeout(limit + SOLVE_GRACE_S):
                        return await run.solve()
                except Exception as exc:  # the serving loop answers whatever happens
                    return self._fallback(problem_id, started, limit, exc)

        async def all_problems() -> list[ProblemResult]:
            return list(await asyncio.gather(*(one(pid, problem) for pid, problem in problems)))

        # Waiting from this thread too covers a loop that stalls (the timeouts above need it).
        rounds = -(-len(problems) // max(1, in_flight))
        return self.run_coroutine(all_problems(), timeout_s=rounds * (limit + SOLVE_GRACE_S) + SOLVE_GRACE_S)

    def _fallback(self, problem_id: str, started: float, limit: float, exc: Exception) -> ProblemResult:
        if isinstance(exc, TimeoutError):
            exc = TimeoutError(f"no result {SOLVE_GRACE_S:.0f} s after the deadline")
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
        try:
            self.run_coroutine(self._cancel_leftover_tasks())
            self.run_coroutine(self.pool.close())
            self.run_coroutine(self._shutdown_engine())
            self.run_coroutine(self._cancel_leftover_tasks())
            self.run_coroutine(self._loop.shutdown_asyncgens())
        finally:
            self._stop_loop()

    async def _shutdown_engine(self) -> None:
        self.engine.shutdown()

    async def _cancel_leftover_tasks(self) -> None:
        leftover = asyncio.all_tasks() - {asyncio.current_task()}
        for task in leftover:
            task.cancel()
        await asyncio.gather(*leftover, return_exceptions=True)

    def _stop_loop(self) -> None:
        self._closing = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop_thread.join()
        self._loop.close()

    def __enter__(self) -> Solver:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
