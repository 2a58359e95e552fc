"""The serving object: one engine, one executor pool, one event loop, many problems.

``Solver.solve`` is synchronous (Kaggle's ``predict`` is) and never raises for a problem:
bad input, a failure inside the loop, or ``close()`` called while a problem is in flight
gives the profile's fallback answer and a log line, because one crashed call loses a
competition submission.

A dead engine (vLLM's EngineDeadError: its engine core was killed, ran out of memory or
crashed) is restarted inside the call that saw it, so the caller's time bank charges the
restart like any other time, and the interrupted problem is solved again if what is left of
its allowance is at least ``RESOLVE_MIN_S`` and ``RESOLVE_MIN_SHARE`` of its limit. A second
death within ``KitConfig.engine_restart_window_s`` of the previous one stops the restarts:
that problem answers from what finished, every later one the fallback (logged at CRITICAL).

The timers of a problem, innermost first (each is a net under the one before it):

1. The problem's deadline (``ProblemRun``, kit/sctir.py): its start plus its time limit (the
   config's ``problem_time_s``, or the allowance the caller passes, e.g. the Kaggle time
   bank's). At the deadline the candidates still running are cancelled and the vote is taken
   over those that had ended; this normally ends a problem within a second or two. A code
   cell's timeout (``executor.cell_timeout_s``) is capped at what is left before the
   deadline (at least 0.1 s), so no cell runs more than that past it.
2. The solver's grace timeout, on the loop: ``time limit + SOLVE_GRACE_S`` around each
   problem. It fires only if the deadline failed to end the problem (a cancellation stuck in
   a library call); the problem then answers the fallback.
3. The thread-side wait, in the caller's thread (``_run_batch``): every round of problems'
   limits plus the grace, plus one grace more. It covers a loop that stalls (timers 1 and 2
   need the loop to run); the problems then answer the fallback.
4. The per-call margin of a submission (``CALL_MARGIN_S``, kit/kaggle/submission.py): where
   the gateway times out each call (AIMO-2: 30 minutes), the time bank never allows a
   problem more than that timeout less the margin. The margin is more than ``SOLVE_GRACE_S``,
   so even a problem that only the grace timeout ends answers before the gateway gives up; a
   stalled loop (timer 3, one more grace) answers at the gateway's limit at the latest.

An engine restart (above) is bounded by none of them: its time is charged to the caller's
time bank, and the interrupted problem is solved again only within what is left of its limit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from kit.config import KitConfig
from kit.engine import Engine, GenerationStep, VllmEngine, is_engine_dead
from kit.sandbox.pool import ExecutorPool
from kit.sctir import ProblemResult, ProblemRun
from kit.voting import VoteResult

if TYPE_CHECKING:
    from kit.reward import RewardScorer

log = logging.getLogger(__name__)

MAX_PROBLEM_CHARS = 100_000
# How long past its deadline a problem may run before solve gives up on it and answers the
# fallback (the deadline normally ends it within a second or two).
SOLVE_GRACE_S = 30.0
# A problem interrupted by an engine death is solved again only if this much of its
# allowance is left: less would cost a restart's worth of work for a vote of a few candidates.
RESOLVE_MIN_S = 5.0
RESOLVE_MIN_SHARE = 0.1


def vllm_engine(cfg: KitConfig) -> Engine:
    """The default engine factory: vLLM on ``cfg.model`` (or the embedded model)."""
    from kit.embedded_model import resolve_model_path

    return VllmEngine(cfg, str(resolve_model_path(cfg.model)))


class DeathWatch:
    """The engine as one batch of problems sees it: records whether a request failed because
    the engine died (the loop itself only marks such candidates as errored)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.died = False

    def encode(self, text: str) -> list[int]:
        return self.engine.encode(text)

    def prompt_ids(self, problem: str) -> list[int]:
        return self.engine.prompt_ids(problem)

    def chat_ids(self, message: str) -> list[int]:
        return self.engine.chat_ids(message)

    async def generate(self, token_ids: list[int], max_tokens: int, request_id: str) -> GenerationStep:
        try:
            return await self.engine.generate(token_ids, max_tokens, request_id)
        except Exception as exc:
            if is_engine_dead(exc):
                self.died = True
            raise

    def shutdown(self) -> None:
        self.engine.shutdown()


class Solver:
    def __init__(self, cfg: KitConfig, engine: Engine | None = None,
                 engine_factory: Callable[[KitConfig], Engine] | None = None, reward: RewardScorer | None = None):
        """Starts the executor pool and the engine: ``engine`` if given, else one built by
        ``engine_factory`` (default: vLLM), which also builds the replacement of a dead engine
        (none without a factory). Build it under ``if __name__ == "__main__"``: vLLM spawns its
        engine process; the factory runs on the solver's loop thread. ``reward``: the scorer of
        ``vote.method: rm``; default, with that method, a ``kit.reward.RewardScorer`` on
        ``reward_model.path``."""
        if engine is None and engine_factory is None:
            engine_factory = vllm_engine
        self._engine_factory = engine_factory
        self.engine_restarts = 0
        self._last_death: float | None = None
        self._engine_failed = False  # restarts given up: every later problem answers the fallback
        self.cfg = cfg
        self.profile = cfg.answer_profile()  # for the fallback answer
        # One event loop, on a thread of its own, runs every problem: vLLM's AsyncLLM binds
        # to the loop it first runs in, and a caller's thread may already run a loop of its
        # own (a notebook's main thread) or change from call to call (gRPC workers).
        self._loop = asyncio.new_event_loop()
        self._closing = False
        self._closed = False  # set when close() starts: later problems answer the fallback
        self._loop_thread = threading.Thread(target=self._serve_loop, name="kit-solver-loop", daemon=True)
        self._loop_thread.start()
        self.pool = ExecutorPool(cfg.executor)
        self.reward = reward
        try:
            # The template imports sympy while the engine loads.
            self.run_coroutine(self.pool.start())
            if engine is None and engine_factory is vllm_engine:
                self.cfg = self._fit_to_model(cfg)
            self.engine = engine if engine is not None else self.run_coroutine(self._build_engine())
            if reward is None and cfg.vote.method == "rm":
                self.reward = self.run_coroutine(self._build_reward_scorer())
        except BaseException:
            # A model that fails to load must not leave the sandbox template running.
            self.run_coroutine(self.pool.close())
            self._stop_loop()
            raise

    @staticmethod
    def _fit_to_model(cfg: KitConfig) -> KitConfig:
        # The loop must plan with the context the engine really has.
        from kit.embedded_model import resolve_model_path
        from kit.engine import fit_context

        return fit_context(cfg, resolve_model_path(cfg.model))

    async def _build_reward_scorer(self) -> RewardScorer:
        from kit.reward import RewardScorer

        return RewardScorer(self.cfg)

    async def _build_engine(self) -> Engine:
        # Built on the loop's thread, so the engine's background tasks live on that loop.
        return self._engine_factory(self.cfg)

    def _serve_loop(self) -> None:
        while not self._closing:
            try:
                self._loop.run_forever()
            except BaseException as exc:
                # A KeyboardInterrupt or SystemExit raised inside a task: asyncio re-raises it
                # here, and the task's caller got it too. The loop must keep serving.
                log.warning("the solver's loop stopped on %r; serving on", exc)

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
        """Solve one problem within ``time_limit_s`` (default: the config's per-problem limit),
        an engine restart and a second attempt included."""
        return self.solve_many([(problem_id, problem)], time_limit_s=time_limit_s)[0]

    def solve_many(self, problems: list[tuple[str, object]], in_flight: int = 1,
                   time_limit_s: float | None = None) -> list[ProblemResult]:
        """Solve ``(problem_id, problem)`` pairs, up to ``in_flight`` at once (each with its own
        deadline), in order. Several problems at once keep a large batch, or several
        data-parallel replicas, busy when sampling training data; a competition solves one.
        Problems a dead engine interrupted are solved again after a restart, each within what
        is left of its own limit (counted from its first start)."""
        limit = self.cfg.problem_time_s if time_limit_s is None else time_limit_s
        started = [time.monotonic()] * len(problems)
        results = self._run_batch(problems, in_flight, [limit] * len(problems), started)
        interrupted = [i for i, r in enumerate(results) if r.stop_reason == "engine_dead"]
        while interrupted and self._recover():
            allowances = {i: limit - (time.monotonic() - started[i]) for i in interrupted}
            again = [i for i in interrupted if allowances[i] >= max(RESOLVE_MIN_S, RESOLVE_MIN_SHARE * limit)]
            for i in set(interrupted) - set(again):
                log.warning("problem %r: %.1f s left after the engine restart, too little to solve it again",
                            problems[i][0], allowances[i])
            retried = self._run_batch([problems[i] for i in again], in_flight, [allowances[i] for i in again], None)
            for i, r in zip(again, retried):
                # A second attempt that found nothing does not replace votes the first one got.
                if not (r.used_fallback and not results[i].used_fallback):
                    results[i] = dataclasses.replace(r, elapsed_s=time.monotonic() - started[i], time_limit_s=limit)
            interrupted = [i for i, r in zip(again, retried) if r.stop_reason == "engine_dead"]
        return results

    def _run_batch(self, problems: list[tuple[str, object]], in_flight: int, limits: list[float],
                   started: list[float] | None) -> list[ProblemResult]:
        """One pass over ``problems``; a problem the engine's death cut short gets the stop
        reason ``engine_dead``. Records in ``started`` (when given) when each problem began."""
        if self._engine_failed or self._closed:
            why = "the engine died and could not be restarted" if self._engine_failed else "the solver is closed"
            return [self._fallback(pid, time.monotonic(), limit, RuntimeError(why))
                    for (pid, _), limit in zip(problems, limits)]
        slots = asyncio.Semaphore(max(1, in_flight))
        engine = DeathWatch(self.engine)

        async def one(index: int, problem_id: str, problem: object, limit: float) -> ProblemResult:
            async with slots:
                t0 = time.monotonic()
                if started is not None:
                    started[index] = t0
                try:
                    prompt_ids = self._prompt_ids(problem)
                    run = ProblemRun(problem_id, prompt_ids, self.cfg, engine, self.pool, limit, problem=problem,
                                     reward=self.reward)
                    # The problem's own deadline ends it; this timeout is the net under that.
                    async with asyncio.timeout(limit + SOLVE_GRACE_S):
                        result = await run.solve()
                except Exception as exc:  # the serving loop answers whatever happens
                    result = self._fallback(problem_id, t0, limit, exc)
                if engine.died:
                    result.stop_reason = "engine_dead"
                return result

        async def all_problems() -> list[ProblemResult]:
            return list(await asyncio.gather(*(one(i, pid, problem, limit)
                                               for i, ((pid, problem), limit) in enumerate(zip(problems, limits)))))

        # Waiting from this thread too covers a loop that stalls (the timeouts above need it).
        rounds = -(-len(problems) // max(1, in_flight))
        wait_s = rounds * (max(limits, default=0.0) + SOLVE_GRACE_S) + SOLVE_GRACE_S
        t0 = time.monotonic()
        try:
            results = self.run_coroutine(all_problems(), timeout_s=wait_s)
        except (TimeoutError, concurrent.futures.CancelledError) as exc:
            # A stalled loop, or close() from another thread cancelled the problems: still answer.
            if isinstance(exc, concurrent.futures.CancelledError):
                exc = RuntimeError("the solver was closed while the problem was in flight")
            return [self._fallback(pid, t0, limit, exc) for (pid, _), limit in zip(problems, limits)]
        if not engine.died and isinstance(self.engine, VllmEngine) and self.engine.errored:
            # It died where no request saw it (every candidate was running code, or had ended):
            # restart now rather than fail the next problem.
            log.error("the engine died during the last problem without failing a request")
            self._recover()
        return results

    def _recover(self) -> bool:
        """Replace the dead engine; False (and every later problem answers the fallback) when
        there is no factory, it died again within the window, or the restart failed."""
        now = time.monotonic()
        window = self.cfg.engine_restart_window_s
        if self._engine_factory is None:
            return self._give_up("no engine factory to restart it with")
        if self._last_death is not None and now - self._last_death < window:
            return self._give_up(f"it died again {now - self._last_death:.0f} s after the previous death "
                                 f"(window {window:.0f} s)")
        self._last_death = now
        log.error("the engine died; restarting it (restart %d)", self.engine_restarts + 1)
        try:
            self.run_coroutine(self._restart_engine())
        except Exception as exc:
            return self._give_up(f"the restart failed: {exc!r}")
        self.engine_restarts += 1
        log.warning("engine restarted in %.1f s", time.monotonic() - now)
        return True

    def _give_up(self, why: str) -> bool:
        self._engine_failed = True
        log.critical("THE ENGINE IS DEAD AND WILL NOT BE RESTARTED: %s. This problem answers from what finished; "
                     "every later problem answers the fallback %r.", why, self.profile.fallback)
        return False

    async def _restart_engine(self) -> None:
        old, self.engine = self.engine, None
        try:
            old.shutdown()
        except Exception as exc:  # a dead engine may fail to shut down cleanly; the new one matters
            log.warning("shutting down the dead engine: %r", exc)
        self.engine = self._engine_factory(self.cfg)

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
        self._closed = True
        try:
            self.run_coroutine(self._cancel_leftover_tasks())
            self.run_coroutine(self.pool.close())
            self.run_coroutine(self._shutdown_engine())
            self.run_coroutine(self._cancel_leftover_tasks())
            self.run_coroutine(self._loop.shutdown_asyncgens())
        finally:
            self._stop_loop()

    async def _shutdown_engine(self) -> None:
        if self.engine is not None:  # None after a restart that failed
            self.engine.shutdown()
        if self.reward is not None:
            self.reward.shutdown()

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
