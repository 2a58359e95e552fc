"""Meters the throughput benchmark puts between the SC-TIR loop and what it drives: the engine
(requests in flight, idle time, the time spent tokenizing replies) and the sandbox pool (the
time spent opening, running and closing sessions). Each clock is injectable, so that tests
measure exact intervals rather than slept ones."""

from __future__ import annotations

import dataclasses
import time

from kit.engine import GenerationStep


class MeteredEngine:
    """Wraps the engine to record the time no request was in flight (the engine sat idle), the
    requests in flight integrated over time (the batch the engine had to work with) and the time
    spent in ``encode`` (the loop tokenizes each cell's reply)."""

    def __init__(self, engine, clock=time.monotonic):
        self.inner = engine
        self.clock = clock
        self.in_flight = 0
        self.idle_s = 0.0
        self.request_s = 0.0  # integral of in_flight over time
        self.encode_s = 0.0
        self._idle_since: float | None = None
        self._changed_at = self.clock()

    def start(self) -> None:
        self.idle_s, self.request_s, self.encode_s = 0.0, 0.0, 0.0
        self._idle_since = self._changed_at = self.clock()

    def stop(self) -> float:
        self._account()
        if self._idle_since is not None:
            self.idle_s += self.clock() - self._idle_since
            self._idle_since = None
        return self.idle_s

    def _account(self) -> None:
        now = self.clock()
        self.request_s += self.in_flight * (now - self._changed_at)
        self._changed_at = now

    def encode(self, text: str) -> list[int]:
        started = self.clock()
        try:
            return self.inner.encode(text)
        finally:
            self.encode_s += self.clock() - started

    def prompt_ids(self, problem: str) -> list[int]:
        return self.inner.prompt_ids(problem)

    async def generate(self, token_ids: list[int], max_tokens: int, request_id: str) -> GenerationStep:
        if self.in_flight == 0 and self._idle_since is not None:
            self.idle_s += self.clock() - self._idle_since
            self._idle_since = None
        self._account()
        self.in_flight += 1
        try:
            return await self.inner.generate(token_ids, max_tokens, request_id)
        finally:
            self._account()
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle_since = self.clock()

    def shutdown(self) -> None:
        self.inner.shutdown()


@dataclasses.dataclass
class SandboxTimes:
    """Wall seconds the candidates spent waiting on the sandbox, summed over candidates."""

    open_s: float = 0.0  # opening sessions (a fork of the template)
    run_s: float = 0.0  # running cells, the wait for a free cell slot included
    close_s: float = 0.0
    sessions: int = 0

    def __add__(self, other: SandboxTimes) -> SandboxTimes:
        return SandboxTimes(self.open_s + other.open_s, self.run_s + other.run_s, self.close_s + other.close_s,
                            self.sessions + other.sessions)

    def report(self) -> dict:
        return {"sessions": self.sessions, "open_s": round(self.open_s, 3), "run_s": round(self.run_s, 3),
                "close_s": round(self.close_s, 3)}


class MeteredSession:
    def __init__(self, session, times: SandboxTimes, clock):
        self.inner, self.times, self.clock = session, times, clock

    async def run(self, code: str, timeout_s: float | None = None):
        started = self.clock()
        try:
            return await self.inner.run(code, timeout_s=timeout_s)
        finally:
            self.times.run_s += self.clock() - started

    async def close(self) -> None:
        started = self.clock()
        try:
            await self.inner.close()
        finally:
            self.times.close_s += self.clock() - started


class MeteredPool:
    """Wraps the sandbox pool (``kit.sandbox.pool.ExecutorPool``): its sessions report the time
    each call took to ``times``."""

    def __init__(self, pool, clock=time.monotonic):
        self.inner, self.clock = pool, clock
        self.times = SandboxTimes()

    def start(self) -> None:
        self.times = SandboxTimes()

    async def open_session(self) -> MeteredSession:
        started = self.clock()
        try:
            session = await self.inner.open_session()
        finally:
            self.times.open_s += self.clock() - started
        self.times.sessions += 1
        return MeteredSession(session, self.times, self.clock)
