"""Soak test: hundreds of problems in a row through one Solver, with the real sandbox and a
scripted engine, candidates mixing ordinary code cells with hostile ones (timeouts, crashes,
huge output, forks, memory hogs), early stop cancelling candidates mid-cell.

What it checks at the end: open file descriptors, child processes and the kit's memory are
back to where they started (after a warm-up problem), and every problem got an answer inside
its allowance, and the sandbox pool holds no session, directory or uid. What it cannot show: anything about the real engine (tests/test_vllm_integration.py).
The figures are printed (pytest -s) for the closing note.
"""

from __future__ import annotations

import os
import random
import threading
import time

import psutil
import pytest

from kit.config import ExecutorConfig, KitConfig
from kit.engine import GenerationStep
from kit.solver import Solver
from scripted_engine import ScriptedEngine, code_step

PROBLEMS = 300
TIME_LIMIT_S = 10.0
SLOW_LIMIT_S = 1.0
# Elapsed time may exceed the allowance by the cancellation and the vote, not by a cell.
OVERRUN_SLACK_S = 1.0

ORDINARY = [
    "x = {seed} * 7\nprint(x)",
    "import sympy as sp\nprint(sp.factorint({seed} + 2))",
    "print(sum(range({seed})))",
]
HOSTILE = [
    "while True:\n    pass",  # runs into the cell timeout
    "import os\nos._exit(3)",  # the interpreter dies
    "print('x' * 5_000_000)",  # huge output
    "import os, time\nfor _ in range(4):\n    if os.fork() == 0:\n        time.sleep(60)\n        os._exit(0)\nprint('forked')",
    "a = bytearray(8 * 1024 ** 3)",  # over the memory cap
    "import sys\nsys.stdout = None\nprint('gone')",
]


class SoakEngine(ScriptedEngine):
    """Each candidate writes up to two cells, one of them hostile with probability 0.3, then
    boxes the problem's answer (candidates of odd index sometimes box a wrong one)."""

    def __init__(self):
        super().__init__(lambda c, s: "")
        self.cells = 0

    async def generate(self, token_ids, max_tokens, request_id) -> GenerationStep:
        problem_id, candidate, step = request_id.rsplit("-", 2)
        rng = random.Random(request_id)
        self.script = lambda c, s: self._text(problem_id, int(c), int(s), rng)
        # Every tenth problem is slow: its deadline lands mid-step and mid-cell.
        self.delay_s = rng.uniform(0.0, 2.0 if int(problem_id[1:]) % 10 == 0 else 0.02)
        return await super().generate(token_ids, max_tokens, request_id)

    def _text(self, problem_id: str, candidate: int, step: int, rng: random.Random) -> str:
        answer = int(problem_id[1:]) % 1000
        if step < 2 and rng.random() < 0.8:
            self.cells += 1
            pool = HOSTILE if rng.random() < 0.3 else ORDINARY
            return code_step(rng.choice(pool).format(seed=rng.randint(1, 500)))
        if candidate % 2 and rng.random() < 0.5:
            answer += 1
        return f"So the answer is \\boxed{{{answer}}}."


def limit_s(problem: int) -> float:
    return SLOW_LIMIT_S if problem % 10 == 0 else TIME_LIMIT_S


class Sampler(threading.Thread):
    """Peak descriptors and child processes of the kit while the soak runs."""

    def __init__(self):
        super().__init__(daemon=True)
        self.me = psutil.Process()
        self.peak_fds = 0
        self.peak_children = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.05):
            self.peak_fds = max(self.peak_fds, self.me.num_fds())
            self.peak_children = max(self.peak_children, len(self.me.children(recursive=True)))


def settle(me: psutil.Process, fds: int = 0, children: int = 0, wait_s: float = 10.0) -> tuple[int, int]:
    """Open descriptors and child processes once background clean-up (a session discarded
    after a cancelled cell) has brought them down to ``fds`` and ``children``, or ``wait_s`` passed."""
    end = time.monotonic() + wait_s
    while (me.num_fds() > fds or len(me.children(recursive=True)) > children) and time.monotonic() < end:
        time.sleep(0.1)
    return me.num_fds(), len(me.children(recursive=True))


@pytest.mark.slow
def test_hundreds_of_problems_with_hostile_cells_leak_nothing():
    cfg = KitConfig(num_samples=16, max_code_rounds=2, early_stop=["4/6"], problem_time_s=TIME_LIMIT_S,
                    executor=ExecutorConfig(cell_timeout_s=0.5, memory_mb=1024, max_concurrent_cells=2))
    engine = SoakEngine()
    me = psutil.Process()
    with Solver(cfg, engine=engine) as solver:
        solver.solve("warm-up", problem_id="p0")  # the template and the loop's threads exist now
        solver.run_coroutine(solver.pool.settle())
        base_fds, base_children = settle(me, wait_s=2.0)
        base_pool_state = (solver.pool.free_uid_slots, solver.pool.session_processes, solver.pool.session_dirs)
        assert base_pool_state[1:] == (0, [])
        base_rss = me.memory_info().rss
        sampler = Sampler()
        sampler.start()
        started = time.monotonic()
        results = [solver.solve(f"problem {i}", problem_id=f"p{i}", time_limit_s=limit_s(i))
                   for i in range(1, PROBLEMS + 1)]
        wall_s = time.monotonic() - started
        sampler.stop.set()
        sampler.join()
        solver.run_coroutine(solver.pool.settle())
        end_fds, end_children = settle(me, base_fds, base_children)
        pool_state = (solver.pool.free_uid_slots, solver.pool.session_processes, solver.pool.session_dirs)
        growth_mb = (me.memory_info().rss - base_rss) / 2**20
    overruns = [r for r in results if r.elapsed_s > r.time_limit_s + OVERRUN_SLACK_S]
    deadlines = sum(r.stop_reason == "deadline" for r in results)
    unanswered = [r for r in results if r.used_fallback and int(r.problem_id[1:]) % 10]
    cells = sum(len(c.cells) for r in results for c in r.candidates)
    failed_cells = sum(cell.error is not None for r in results for c in r.candidates for cell in c.cells)
    print(f"\nsoak: {PROBLEMS} problems in {wall_s:.0f} s ({deadlines} ended by their deadline), {cells} cells run ({failed_cells} with errors), "
          f"peak fds {sampler.peak_fds} (base {base_fds}, end {end_fds}), peak child processes "
          f"{sampler.peak_children} (base {base_children}, end {end_children}), RSS growth {growth_mb:.1f} MiB")
    assert not overruns, [(r.problem_id, r.elapsed_s) for r in overruns]
    assert not unanswered, [(r.problem_id, r.stop_reason) for r in unanswered]
    # Even candidates always box the right answer: it wins unless the vote was cut very short.
    right = sum(r.answer == str(int(r.problem_id[1:]) % 1000) for r in results if r.vote.table)
    assert right >= 0.9 * sum(bool(r.vote.table) for r in results)
    assert pool_state == (base_pool_state[0], 0, [])
    assert end_fds <= base_fds
    assert end_children <= base_children
    # Python's allocator keeps some arenas; a leak per problem or per cell would be far larger.
    assert growth_mb < 100
