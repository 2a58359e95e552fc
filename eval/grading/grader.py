"""Answer grading for evaluation runs: does a predicted answer equal the gold answer?

Answers are the *contents* of a ``\\boxed{}`` (``42``, ``\\frac{1}{2}``, ``(1,2)``, ``[0, \\infty)``,
``5\\text{ cm}``, ``x=3``). Two stages:

1. Integer fast path (:func:`grade_integer`, in this process): when gold and prediction are both
   plain integers (optional sign, ``1,000`` thousands separators, a ``.0`` tail, surrounding ``$``)
   they are compared as integers. Most AIME/AMC/GSM8K answers and ~60% of MATH's end here.
2. Everything else goes to Hugging Face's ``math-verify``: ``verify(parse(gold), parse(pred))``,
   gold first (it is deliberately asymmetric), each answer wrapped as ``\\boxed{answer}``. That
   wrapping and ``$answer$`` grade the same on all 5000 MATH answers and on the tests' cases; the
   boxed form is a little faster. Our only normalization before ``parse``
   (:func:`normalize_answer`): enclosing ``$`` off, and the ``,\\!`` / ``{,}`` thousands separators
   MATH uses dropped (math-verify misreads them inside larger expressions). math-verify itself
   already drops ``\\text{ cm}``-style units, ``^\\circ`` and ``\\%`` (see the tests).

math-verify runs in worker processes (:class:`Grader`), because its own timeout uses
``signal.alarm`` (main thread only) and some inputs hang or eat memory regardless (towers of
powers such as ``2^{2^{2^{2^{2^{2^{2^{2}}}}}}}``, ``(10^{10})!``, Math-Verify issues #63 and #65).
Its internal timeouts are switched off (``parsing_timeout=None``, ``timeout_seconds=None``); the
hard kill below is what bounds the time.

Guarantees
- Never hangs on an answer: a pair handed to a worker is answered within ``timeout_s`` of being
  sent (plus the milliseconds of a kill); past that the worker is SIGKILLed, replaced, and the
  pair graded ``timeout`` (counted wrong). ``grade_many`` of N pairs therefore takes at most about
  ``ceil(N / workers) * timeout_s`` beyond the workers' start-up.
- Memory capped: each worker's address space is limited to ``memory_mb`` (RLIMIT_AS). A
  ``MemoryError``, a worker that got near its cap, or one that dies gives ``error`` and a fresh
  worker; the grader goes on.
- No signals in the calling process, so a Grader can be used from any thread (grade() is
  thread-safe). Workers are fresh interpreters (``python -m eval.grading.worker``, i.e.
  fork+exec, the "spawn" model), never a fork of a process that may hold vLLM threads.
- No process left behind: close() (or ``with``) kills and reaps the workers; a Grader that is
  garbage-collected or still open at interpreter exit is closed by a weakref finalizer (atexit).
  If the parent dies otherwise (SIGKILL), the kernel kills the workers (PR_SET_PDEATHSIG).
- Cheap to construct: no worker starts before the first pair that needs math-verify.

Not guaranteed
- That math-verify's verdict is right: it is a heuristic parser+comparer; tests/test_grader.py
  pins the behaviours we rely on and the lenient ones (units and degrees dropped, comma lists
  compared as sets, ``50\\%`` equal to both 50 and 0.5). A correct answer that takes longer than
  ``timeout_s`` to verify is graded ``timeout``, i.e. wrong.
- That memory exhaustion always shows as ``error``: sympy and math-verify catch generic
  exceptions (MemoryError included) and then answer "no match". We catch this indirectly: a
  worker whose peak address space (VmPeak) got to 75% of the cap is replaced after the pair, and
  a "no match" verdict it reached is reported as ``error``. An allocation refused outright (a
  single huge request while the process is still small) stays invisible, and grades ``wrong``.
- Start-up time: a worker's start (interpreter + math-verify import + warm-up, ~1-2 s) is not
  part of ``timeout_s``; it is bounded by ``STARTUP_TIMEOUT_S`` and a failure to start raises
  RuntimeError (e.g. math-verify not installed).
- Linux/POSIX only (select on pipes, RLIMIT_AS). The result cache is an unbounded dict; it keeps
  only definite verdicts (correct, wrong), so a pair that timed out or errored is graded again.
"""

from __future__ import annotations

import json
import os
import queue
import re
import select
import subprocess
import sys
import threading
import time
import weakref
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Self

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 60.0
MAX_DEFAULT_WORKERS = 4
# A worker whose peak address space reached this fraction of its cap is replaced after the pair,
# and a "no match" verdict reached there is reported as "error" (see eval.grading.worker).
NEAR_CAP = 0.75


@dataclass(frozen=True)
class Grade:
    correct: bool
    status: str  # "correct" | "wrong" | "no_answer" (pred None/empty) | "timeout" | "error"
    method: str  # "integer" (fast path) | "math_verify" | "none"


NO_ANSWER = Grade(False, "no_answer", "none")

# A plain integer: sign, digits with optional well-formed thousands groups ("1,000"), optional
# ".0" tail. "1,2" is NOT an integer (math-verify reads it as the set {1, 2}).
_INTEGER = re.compile(r"([-+]?)(\d{1,3}(?:,\d{3})+|\d+)(?:\.0*)?")
# LaTeX's typographic thousands separators, as MATH writes them: "5,\!525", "90{,}900{,}909".
# Unlike a plain comma they never separate list items, so they are safe to drop; math-verify
# reads "\frac{12}{5,\!525}" as nothing and "10,\!000\pi" as the set {10, 0}.
_THOUSANDS_MARK = re.compile(r"(?<=\d)(?:,\\!|\{,\})\s*(?=\d{3}(?!\d))")


def _strip_math(answer: str) -> str:
    """Whitespace and enclosing ``$``/``$$`` delimiters off an answer."""
    answer = answer.strip()
    while len(answer) >= 2 and answer[0] == "$" and answer[-1] == "$":
        answer = answer[1:-1].strip()
    return answer


def normalize_answer(answer: str) -> str:
    r"""The only normalization we apply before math-verify: enclosing ``$`` and whitespace off,
    ``,\!`` / ``{,}`` thousands separators between digit groups removed."""
    return _THOUSANDS_MARK.sub("", _strip_math(answer))


def _as_integer(answer: str) -> str | None:
    """Canonical decimal string of a plain-integer answer ("-0012" -> "-12"), else None.
    Strings, not int(): Python refuses int() of more than 4300 digits."""
    match = _INTEGER.fullmatch(normalize_answer(answer))
    if match is None:
        return None
    digits = re.sub(r"\D", "", match.group(2)).lstrip("0") or "0"
    return "-" + digits if match.group(1) == "-" and digits != "0" else digits


def grade_integer(gold: str, pred: str) -> Grade | None:
    """Exact comparison when gold and pred are both plain integers; None otherwise."""
    if gold is None or pred is None:
        return None
    gold_int, pred_int = _as_integer(str(gold)), _as_integer(str(pred))
    if gold_int is None or pred_int is None:
        return None
    correct = gold_int == pred_int
    return Grade(correct, "correct" if correct else "wrong", "integer")


def _default_workers() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # no sched_getaffinity on this platform (macOS)
        cpus = os.cpu_count() or 1
    return max(1, min(MAX_DEFAULT_WORKERS, cpus))


class _WorkerDied(Exception):
    pass


class _WorkerStartFailed(Exception):
    pass


_spawn_requests: queue.SimpleQueue = queue.SimpleQueue()
_spawner_lock = threading.Lock()
_spawner: threading.Thread | None = None


def _spawner_loop() -> None:
    while True:
        command, done = _spawn_requests.get()
        try:
            done.set_result(subprocess.Popen(command, cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                             bufsize=0, close_fds=True))
        except BaseException as error:  # noqa: BLE001 - handed to the caller
            done.set_exception(error)


def _popen_worker(command: list[str]) -> subprocess.Popen:
    """Popen from one thread that lives as long as this process. A worker asks for SIGKILL when
    its parent dies (PR_SET_PDEATHSIG), and Linux sends it when the *thread* that started the
    worker ends: short-lived threads (grade_many's) must not be that thread."""
    global _spawner
    with _spawner_lock:
        if _spawner is None or not _spawner.is_alive():  # first use, or in a forked child
            _spawner = threading.Thread(target=_spawner_loop, name="eval.grading.grader-spawner", daemon=True)
            _spawner.start()
    done: Future = Future()
    _spawn_requests.put((command, done))
    return done.result()


class _Worker:
    """The parent's handle on one worker process: JSON lines over its stdin/stdout."""

    def __init__(self, memory_mb: int):
        config = {"memory_mb": memory_mb, "parent_pid": os.getpid()}
        command = [sys.executable, "-m", "eval.grading.worker", json.dumps(config)]
        self.proc = _popen_worker(command)
        self._buffer = b""
        self.ready = False

    def _read_line(self, deadline: float) -> bytes | None:
        """One line from the worker; None at the deadline; _WorkerDied at EOF."""
        try:
            fd = self.proc.stdout.fileno()
        except ValueError:
            raise _WorkerDied() from None
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                readable, _, _ = select.select([fd], [], [], remaining)
                if not readable:
                    continue
                chunk = os.read(fd, 65536)
            except (OSError, ValueError):  # closed under us by close() from another thread
                raise _WorkerDied() from None
            if not chunk:
                raise _WorkerDied()
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def wait_ready(self) -> None:
        if self.ready:
            return
        try:
            line = self._read_line(time.monotonic() + STARTUP_TIMEOUT_S)
        except _WorkerDied:
            raise _WorkerStartFailed(f"grader worker exited at start-up (code {self.proc.wait()})") from None
        if line is None:
            raise _WorkerStartFailed(f"grader worker not ready after {STARTUP_TIMEOUT_S:.0f} s")
        message = json.loads(line)
        if not message.get("ready"):
            raise _WorkerStartFailed(f"grader worker failed to start: {message.get('error')}")
        self.ready = True

    def request(self, gold: str, pred: str, timeout_s: float) -> dict | None:
        """The worker's reply for one pair, None past timeout_s; _WorkerDied if it died."""
        try:
            self.proc.stdin.write(json.dumps({"gold": gold, "pred": pred}).encode() + b"\n")
        except (BrokenPipeError, OSError):
            raise _WorkerDied() from None
        line = self._read_line(time.monotonic() + timeout_s)
        if line is None:
            return None
        try:
            return json.loads(line)
        except ValueError:
            raise _WorkerDied() from None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:  # flushing to the killed worker's pipe fails; there is nothing left to send
                pass
        self.proc.wait()


def _kill_all(workers: set, lock: threading.Condition) -> None:
    """Finalizer of a Grader (close(), garbage collection or interpreter exit): no self here."""
    with lock:
        doomed = list(workers)
        workers.clear()
    for worker in doomed:
        worker.kill()


class Grader:
    """Grades (gold, pred) answer pairs; see the module docstring for what it guarantees."""

    def __init__(self, workers: int | None = None, timeout_s: float = 5.0, memory_mb: int = 1024,
                 cache: bool = True):
        self.workers = workers if workers is not None else _default_workers()
        if self.workers < 1:
            raise ValueError("workers must be >= 1")
        self.timeout_s = float(timeout_s)
        self.memory_mb = int(memory_mb)
        self.cache_enabled = cache
        self._cache: dict[tuple[str, str], Grade] = {}
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []
        self._live: set[_Worker] = set()  # every started, not yet killed worker (busy or idle)
        self._closed = False
        self._stats = {"integer": 0, "cache_hits": 0, "dispatched": 0, "timeouts": 0, "errors": 0,
                       "workers_started": 0}
        self._finalizer = weakref.finalize(self, _kill_all, self._live, self._cond)

    # ---- public API -------------------------------------------------------------------------

    def grade(self, gold: str, pred: str | None) -> Grade:
        quick = self._quick(gold, pred)
        if quick is not None:
            return quick
        return self._grade_remote(gold, pred)

    def grade_many(self, pairs: list[tuple[str, str | None]], progress: bool = False) -> list[Grade]:
        """Grades in parallel over the workers; results in the order of `pairs`. With the cache on,
        identical pairs are graded once."""
        from tqdm import tqdm

        results: list[Grade | None] = [None] * len(pairs)
        pending: dict[object, list[int]] = {}
        with tqdm(total=len(pairs), disable=not progress, desc="grading", unit="pair") as bar:
            for index, (gold, pred) in enumerate(pairs):
                quick = self._quick(gold, pred)
                if quick is not None:
                    results[index] = quick
                    bar.update(1)
                elif self.cache_enabled:
                    pending.setdefault(self._key(gold, pred), []).append(index)
                else:
                    pending[index] = [index]
            if pending:
                with ThreadPoolExecutor(max_workers=min(self.workers, len(pending))) as pool:
                    futures = {pool.submit(self._grade_remote, *pairs[indices[0]]): indices
                               for indices in pending.values()}
                    try:
                        for future in as_completed(futures):
                            grade = future.result()
                            for index in futures[future]:
                                results[index] = grade
                            bar.update(len(futures[future]))
                    except BaseException:
                        for future in futures:
                            future.cancel()
                        raise
        return results  # type: ignore[return-value]

    def stats(self) -> dict[str, int]:
        """Counters: integer fast path, cache hits, pairs sent to workers, timeouts, errors,
        worker processes started (replacements included)."""
        with self._cond:
            return dict(self._stats)

    def worker_pids(self) -> list[int]:
        with self._cond:
            return [worker.proc.pid for worker in self._live]

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._idle.clear()
            self._cond.notify_all()
        self._finalizer()  # kills busy workers too: their pending requests come back as errors

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ---- internals --------------------------------------------------------------------------

    @staticmethod
    def _key(gold: str, pred: str) -> tuple[str, str]:
        return str(gold).strip(), str(pred).strip()

    def _count(self, name: str, n: int = 1) -> None:
        with self._cond:
            self._stats[name] += n

    def _quick(self, gold: str, pred: str | None) -> Grade | None:
        """Grade without a worker when possible: no answer, the integer fast path, the cache."""
        if pred is None or not _strip_math(str(pred)):
            return NO_ANSWER
        if gold is None or not _strip_math(str(gold)):
            return Grade(False, "error", "none")  # no gold answer: nothing to compare with
        fast = grade_integer(gold, pred)
        if fast is not None:
            self._count("integer")
            return fast
        if self.cache_enabled:
            with self._cond:
                cached = self._cache.get(self._key(gold, pred))
                if cached is not None:
                    self._stats["cache_hits"] += 1
                return cached
        return None

    def _acquire(self) -> _Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError("Grader is closed")
                while self._idle:
                    # Prefer a worker that is up over a replacement still starting.
                    ready = [index for index, worker in enumerate(self._idle) if worker.ready]
                    worker = self._idle.pop(ready[-1] if ready else -1)
                    if worker.alive():
                        return worker
                    self._live.discard(worker)  # died while idle (killed from outside): not this pair's fault
                    worker.kill()
                if len(self._live) < self.workers:
                    return self._start_worker()
                self._cond.wait()

    def _start_worker(self) -> _Worker:
        """Called with the lock held; Popen returns at once, readiness is awaited at first use."""
        worker = _Worker(self.memory_mb)
        self._live.add(worker)
        self._stats["workers_started"] += 1
        return worker

    def _release(self, worker: _Worker, healthy: bool, replace: bool = True) -> None:
        if not healthy:
            worker.kill()
        with self._cond:
            if healthy and not self._closed:
                self._idle.append(worker)
            else:
                self._live.discard(worker)
                if not healthy and replace and not self._closed:
                    self._idle.append(self._start_worker())  # replacement, starting in the background
            self._cond.notify()
        if healthy and self._closed:
            worker.kill()

    def _grade_remote(self, gold: str, pred: str) -> Grade:
        worker = self._acquire()
        try:
            worker.wait_ready()
        except _WorkerStartFailed as error:
            self._release(worker, healthy=False, replace=False)  # the next pair tries a fresh start
            raise RuntimeError(str(error)) from None
        except BaseException:
            self._release(worker, healthy=False)
            raise
        self._count("dispatched")
        try:
            reply = worker.request(*self._key(gold, pred), self.timeout_s)
        except _WorkerDied:
            self._release(worker, healthy=False)
            return self._finish(gold, pred, Grade(False, "error", "math_verify"))
        except BaseException:
            self._release(worker, healthy=False)
            raise
        if reply is None:
            self._release(worker, healthy=False)
            return self._finish(gold, pred, Grade(False, "timeout", "math_verify"))
        self._release(worker, healthy=not reply.get("recycle", False))
        status = reply.get("status")
        if status not in ("correct", "wrong", "error"):
            status = "error"
        return self._finish(gold, pred, Grade(status == "correct", status, "math_verify"))

    def _finish(self, gold: str, pred: str, grade: Grade) -> Grade:
        with self._cond:
            if grade.status == "timeout":
                self._stats["timeouts"] += 1
            elif grade.status == "error":
                self._stats["errors"] += 1
            # Only definite verdicts: a timeout or an error may come from a loaded machine or a
            # worker that died, and would otherwise stick for every later seed of the run.
            if self.cache_enabled and not self._closed and grade.status in ("correct", "wrong"):
                self._cache[self._key(gold, pred)] = grade
        return grade
