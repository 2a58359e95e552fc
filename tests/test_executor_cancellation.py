"""kit.sandbox.pool under cancellation, the way early stop and deadlines cancel candidates:
opening, running and closing sessions cancelled at their await points, more sessions wanted
than there are uids, and a stress run of the SC-TIR loop (scripted engine, real sandbox)."""

from __future__ import annotations

import asyncio
import os
import random

import pytest

from kit.config import ExecutorConfig, KitConfig
from kit.sandbox.pool import UIDS_PER_POOL, ExecutorPool
from kit.sandbox.process import SessionProcess
from kit.sctir import ProblemRun
from kit.solver import Solver
from scripted_engine import ScriptedEngine, code_step
from test_executor import pids_of_uids

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="per-session uids (and their 128 slots) need root")
WHO_AM_I = "import os\nprint(os.getpid(), os.getuid(), os.getcwd())"


async def assert_back_to_baseline(pool: ExecutorPool) -> None:
    """No uid, process or directory of a session is left once the background clean-up is done."""
    await pool.settle()
    assert pool.session_processes == 0
    assert pool.session_dirs == []
    if pool.as_root:
        assert pool.free_uid_slots == UIDS_PER_POOL
        assert pids_of_uids(pool.uid_range) == []


async def assert_paired(session) -> None:
    """The session's process is the one its own request started: its pid, uid and directory."""
    result = await session.run(WHO_AM_I)
    pid, uid, cwd = result.output.split()
    expected_uid = os.getuid() if session.uid is None else session.uid
    assert (int(pid), int(uid), cwd) == (session.pid, expected_uid, os.path.join(session.directory, "work"))


def run_on_pool(body, **options):
    async def main():
        async with ExecutorPool(ExecutorConfig(**options)) as pool:
            await body(pool)

    asyncio.run(main())


def test_a_cancelled_cell_still_has_its_session_cleaned_up():
    async def body(pool):
        session = await pool.open_session()
        await session.run("x = 1")
        cell = asyncio.create_task(session.run("while True: pass", timeout_s=30))
        await asyncio.sleep(0.2)
        cell.cancel()
        await asyncio.gather(cell, return_exceptions=True)
        await assert_paired(session)  # a fresh process, paired with its own request
        assert (await session.run("x")).error == "NameError"
        await session.close()
        await assert_back_to_baseline(pool)

    run_on_pool(body)


# Where an open can be cancelled: while another open holds the template's channel, between
# the request and its reply, while waiting for the session's hello, and once it is ready.
POINTS = ["waiting_for_the_channel", "waiting_for_the_reply", "waiting_for_the_hello", "when_ready"]


@pytest.mark.parametrize("point", POINTS)
def test_cancelling_an_open_leaks_nothing_and_the_next_session_pairs_with_its_process(point, monkeypatch):
    events: dict[str, asyncio.Event] = {}  # fresh ones for each try
    read_message = SessionProcess.read_message

    async def traced_read_message(process):
        events["hello"].set()
        message = await read_message(process)
        events["ready"].set()
        return message

    monkeypatch.setattr(SessionProcess, "read_message", traced_read_message)

    async def body(pool):
        control_recv = pool._control_recv

        async def traced_control_recv():
            events["reply"].set()
            return await control_recv()

        monkeypatch.setattr(pool, "_control_recv", traced_control_recv)
        for _ in range(3):
            events.update({name: asyncio.Event() for name in ("reply", "hello", "ready")})
            first = asyncio.create_task(pool.open_session())
            if point == "waiting_for_the_channel":
                await events["reply"].wait()  # the first holds the channel; the second waits for it
                victim = asyncio.create_task(pool.open_session())
                await asyncio.sleep(0)
            else:
                victim = first
                await events[point.split("_")[-1]].wait()
            victim.cancel()
            sessions = [r for r in await asyncio.gather(first, victim, return_exceptions=True)
                        if not isinstance(r, BaseException)]
            for session in sessions:
                await assert_paired(session)
                await session.close()
            await assert_back_to_baseline(pool)
            session = await pool.open_session()
            await assert_paired(session)
            await session.close()
            await assert_back_to_baseline(pool)

    run_on_pool(body)


def test_cancelling_opens_at_random_moments_leaks_nothing():
    rng = random.Random(7)

    async def body(pool):
        for _ in range(30):
            opens = [asyncio.create_task(pool.open_session()) for _ in range(3)]
            for _ in range(rng.randrange(40)):
                await asyncio.sleep(0)
            if rng.random() < 0.5:
                await asyncio.sleep(rng.uniform(0, 0.01))
            for task in opens:
                task.cancel()
            for session in await asyncio.gather(*opens, return_exceptions=True):
                if not isinstance(session, BaseException):
                    await assert_paired(session)
                    await session.close()
            await assert_back_to_baseline(pool)

    run_on_pool(body)


def test_a_cell_running_into_the_deadline_gives_its_uid_and_directory_back():
    # The cell's timeout is the time left, so the deadline cancels the candidate while its
    # session is being recovered from the timeout.
    async def body(pool):
        for _ in range(3):
            session = await pool.open_session()
            cell = asyncio.create_task(session.run("while True: pass", timeout_s=0.2))
            while session.pid is not None:  # None from the timeout until the replacement is up
                await asyncio.sleep(0)
            cell.cancel()
            await asyncio.gather(cell, return_exceptions=True)
            await session.close()
            await assert_back_to_baseline(pool)

    run_on_pool(body)


def test_closing_finishes_although_the_caller_is_cancelled():
    async def body(pool):
        for delay in range(1, 5):  # from 1: a task cancelled before it starts never calls close()
            session = await pool.open_session()
            closing = asyncio.create_task(session.close())
            for _ in range(delay):
                await asyncio.sleep(0)
            closing.cancel()
            await asyncio.gather(closing, return_exceptions=True)
            await assert_back_to_baseline(pool)

    run_on_pool(body)


@needs_root
def test_opening_more_sessions_than_uids_waits_for_a_free_one():
    async def body(pool):
        sessions = await asyncio.gather(*(pool.open_session() for _ in range(UIDS_PER_POOL)))
        assert pool.free_uid_slots == 0
        given_up, waiting = asyncio.create_task(pool.open_session()), asyncio.create_task(pool.open_session())
        await asyncio.sleep(0.3)
        assert not given_up.done() and not waiting.done()
        given_up.cancel()  # a cancelled wait must not take the slot that comes free next
        await sessions[0].close()
        late = await asyncio.wait_for(waiting, 10)
        assert given_up.cancelled()
        await assert_paired(late)
        for session in [late, *sessions[1:]]:
            await session.close()
        await assert_back_to_baseline(pool)

    run_on_pool(body, max_concurrent_cells=2)


@needs_root
def test_problems_in_flight_wanting_more_than_128_sessions_all_get_one():
    # 4 problems x 40 candidates, each holding its session over a slow second step.
    def script(c, s):
        return [code_step(f"tag = {c}"), code_step("print(tag)"), f"\\boxed{{{7}}}"][s]

    engine = ScriptedEngine(script, delay_s=lambda c, s: 0.5 if s == 1 else 0.0)
    cfg = KitConfig(num_samples=40, max_code_rounds=2, early_stop=[], problem_time_s=60)
    with Solver(cfg, engine=engine) as solver:
        results = solver.solve_many([(f"p{i}", f"problem {i}") for i in range(4)], in_flight=4)
        leftovers = solver.run_coroutine(solver.pool.settle()), solver.pool.free_uid_slots
    candidates = [c for r in results for c in r.candidates]
    assert len(candidates) == 160
    assert {(c.status, c.reason) for c in candidates} == {("answered", "answer")}
    assert all(c.cells[1].output.strip().split("\n")[0] == str(c.index) for c in candidates)
    assert leftovers == (None, UIDS_PER_POOL)


def stress_problem(rng: random.Random, number: int) -> tuple[KitConfig, ScriptedEngine, float]:
    """One problem of the stress test: N candidates whose cells check that they run in their own
    session; early stop and a short deadline cut them at random points."""
    n = rng.choice([24, 32, 48])
    problem = f"p{number}"
    hangs = {c for c in range(n) if rng.random() < 0.05}  # cells that run into the deadline
    delays = {(c, s): rng.choice([0.0, 0.0, rng.uniform(0, 0.03), rng.uniform(0, 0.3)]) for c in range(n) for s in range(3)}

    def script(c, s):
        tag = f"{problem}-{c}"
        if s == 0:
            return code_step(f"tag = {tag!r}\nprint({tag!r})")
        if s == 1:
            return code_step("while True: pass" if c in hangs else f"print({tag!r}, tag)")
        return "So \\boxed{7}."

    cfg = KitConfig(num_samples=n, max_code_rounds=2, early_stop=rng.choice([["4/4"], ["decided"], ["2/2"], []]),
                    executor=ExecutorConfig(cell_timeout_s=30.0))
    return cfg, ScriptedEngine(script, delay_s=lambda c, s: delays[(c, s)]), rng.uniform(0.2, 0.6)


def test_stress_early_stop_and_deadlines_leave_every_cell_in_its_own_session():
    rng = random.Random(10)
    seen_stops, seen_cancelled = set(), 0

    async def body(pool):
        nonlocal seen_cancelled
        for number in range(30):
            cfg, engine, time_limit_s = stress_problem(rng, number)
            run = ProblemRun(f"p{number}", engine.prompt_ids("x"), cfg, engine, pool, time_limit_s)
            result = await run.solve()
            seen_stops.add(result.stop_reason.split(":")[0])
            for c in result.candidates:
                assert not c.reason.startswith("error"), (number, c.index, c.reason)
                seen_cancelled += c.status == "cancelled"
                tag = f"p{number}-{c.index}"
                for round_no, cell in enumerate(c.cells):
                    if cell.timed_out:
                        continue
                    expected = tag if round_no == 0 else f"{tag} {tag}"
                    assert cell.error is None and cell.output.strip().split("\n")[0] == expected, (number, c.index, cell)
            await assert_back_to_baseline(pool)

    run_on_pool(body, max_concurrent_cells=2)
    assert {"early_stop", "deadline"} <= seen_stops and seen_cancelled > 100
