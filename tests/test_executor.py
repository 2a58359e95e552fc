"""Tests of kit.sandbox.pool against real sandbox processes (one property per test)."""

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from kit.config import ExecutorConfig
from kit.sandbox.pool import ExecutorPool, sweep_uids

REPO_ROOT = Path(__file__).resolve().parent.parent
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="per-session uids need root")


def with_pool(body, **pool_options):
    """Run `await body(pool)` on a fresh pool in a fresh event loop; the pool is closed after."""

    async def main():
        async with ExecutorPool(ExecutorConfig(**pool_options)) as pool:
            return await body(pool)

    return asyncio.run(main())


@pytest.fixture(scope="module")
def shared_pool():
    """Like with_pool, for tests that need no pool of their own: one pool (and one template
    start) for the module keeps the file fast. Each test works in sessions of its own."""
    loop = asyncio.new_event_loop()
    pool = ExecutorPool(ExecutorConfig(max_concurrent_cells=2, memory_mb=2048, max_processes=16, capture_chars=16384))
    loop.run_until_complete(pool.start())
    yield lambda body: loop.run_until_complete(body(pool))
    loop.run_until_complete(pool.close())
    loop.close()


def is_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return "\nState:\tZ" not in status.read()
    except FileNotFoundError:
        return False


def pids_of_uids(uids: range) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as status:
                text = status.read()
        except OSError:
            continue
        uid = int(re.search(r"^Uid:\s+(\d+)", text, re.MULTILINE).group(1))
        if uid in uids and "\nState:\tZ" not in text:
            pids.append(int(name))
    return pids


def wait_until(condition, timeout_s: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_state_persists_across_cells(shared_pool):
    async def body(pool):
        session = await pool.open_session()
        await session.run("x = 41")
        return await session.run("print(x + 1)")

    result = shared_pool(body)
    assert result.error is None
    assert result.output == "42\n"


def test_stdout_and_stderr_are_captured(shared_pool):
    async def body(pool):
        session = await pool.open_session()
        code = "import sys, os\nprint('to stdout')\nprint('to stderr', file=sys.stderr)\nos.system('echo from a shell')"
        return await session.run(code)

    result = shared_pool(body)
    assert result.output.splitlines()[:3] == ["to stdout", "to stderr", "from a shell"]


def test_last_expression_is_displayed_unless_none(shared_pool):
    async def body(pool):
        session = await pool.open_session()
        return [await session.run(code) for code in ["y = 6\ny * 7", "None", "print('p')"]]

    shown, none, printed = shared_pool(body)
    assert shown.output == "42\n"
    assert none.output == ""
    assert printed.output == "p\n"


def test_error_gives_cleaned_traceback(shared_pool):
    async def body(pool):
        session = await pool.open_session()
        return await session.run("import json\ndef parse():\n    return json.loads('{')\nparse()")

    result = shared_pool(body)
    assert result.error == "JSONDecodeError"
    assert set(re.findall(r'File "([^"]*)"', result.output)) == {"<cell>"}
    assert "line 4, in <module>" in result.output and "line 3, in parse" in result.output
    assert result.output.rstrip().splitlines()[-1].startswith("json.decoder.JSONDecodeError: Expecting property name")


def test_timeout_kills_and_recovers_with_fresh_state(shared_pool):
    async def body(pool):
        session = await pool.open_session()
        await session.run("x = 1")
        old_pid = session.pid
        started = time.monotonic()
        result = await session.run("print('partial', flush=True)\nwhile True:\n    pass", timeout_s=1.0)
        elapsed = time.monotonic() - started
        after = await session.run("x")
        return result, elapsed, after, old_pid, session.pid

    result, elapsed, after, old_pid, new_pid = shared_pool(body)
    assert result.timed_out and result.state_reset and result.error == "TimeoutError"
    assert result.output.startswith("partial\n")
    last_line = "TimeoutError: cell exceeded 1.0 s; the interpreter was restarted and its variables are lost"
    assert result.output.endswith(last_line)
    assert elapsed < 1.8
    assert not is_alive(old_pid) and new_pid != old_pid
    assert after.error == "NameError"


def test_memory_cap_gives_memory_error_and_session_survives(shared_pool):
    async def body(pool):
        session = await pool.open_session()
        await session.run("kept = 'still here'")
        result = await session.run("big = bytearray(4 * 1024**3)")
        return result, await session.run("kept")

    result, after = shared_pool(body)
    assert result.error == "MemoryError" and not result.state_reset
    assert after.output == "'still here'\n"


def test_sys_exit_is_an_error_and_session_keeps_state(shared_pool):
    async def body(pool):
        session = await pool.open_session()
        await session.run("kept = 7")
        result = await session.run("import sys\nsys.exit(3)")
        return result, await session.run("kept")

    result, after = shared_pool(body)
    assert result.error == "SystemExit" and not result.state_reset
    assert result.output.rstrip().endswith("SystemExit: 3")
    assert after.output == "7\n"


def test_os_exit_gives_sandbox_crash_and_a_fresh_session(shared_pool):
    async def body(pool):
        session = await pool.open_session()
        await session.run("kept = 7")
        result = await session.run("import os\nos._exit(0)")
        return result, await session.run("print('alive')"), await session.run("kept")

    result, alive, gone = shared_pool(body)
    assert result.error == "SandboxCrash" and result.state_reset and not result.timed_out
    assert "SandboxCrash: the interpreter died" in result.output
    assert alive.output == "alive\n"
    assert gone.error == "NameError"


def test_segfault_is_contained(shared_pool):
    async def body(pool):
        session = await pool.open_session()
        result = await session.run("import ctypes\nctypes.string_at(0)")
        return result, await session.run("1 + 1")

    result, after = shared_pool(body)
    assert result.error == "SandboxCrash" and result.state_reset
    assert "signal SIGSEGV" in result.output
    assert after.output == "2\n"


@needs_root
@pytest.mark.parametrize(
    "bomb",
    [
        "import os\nwhile True: os.fork()",
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
    ],
    ids=["plain", "swallowing-errors"],
)
def test_fork_bomb_is_contained_and_leaves_no_process(bomb, shared_pool):
    async def body(pool):
        others = set(pids_of_uids(pool.uid_range))  # other tests' sessions
        session = await pool.open_session()
        result = await session.run(bomb, timeout_s=1.0)
        after = await session.run("1 + 1")
        # The session process (the same or a fresh one) is all that remains of it.
        only_session_left = wait_until(lambda: set(pids_of_uids(pool.uid_range)) - others == {session.pid})
        return result, after, only_session_left

    result, after, only_session_left = shared_pool(body)
    assert result.error in ("BlockingIOError", "TimeoutError")
    assert after.output == "2\n"
    assert only_session_left


def test_forked_child_of_a_cell_never_answers_for_the_session(shared_pool):
    async def body(pool):
        session = await pool.open_session()
        # The child finishes the cell first, while the session process still runs it.
        code = "import os, time\npid = os.fork()\nif pid != 0:\n    time.sleep(0.3)\n'child' if pid == 0 else 'parent'"
        forked = await session.run(code)
        return forked, [await session.run(f"{i} * 10") for i in range(3)]

    forked, after = shared_pool(body)
    assert forked.output.endswith("'parent'\n")  # what the child printed is captured, but it sent no reply
    assert [r.output for r in after] == ["0\n", "10\n", "20\n"]


def test_huge_print_is_capped_and_fast(shared_pool):
    async def body(pool):
        session = await pool.open_session()
        started = time.monotonic()
        result = await session.run("print('x' * 10_000_000)")
        return result, time.monotonic() - started

    result, elapsed = shared_pool(body)
    assert result.error is None
    assert result.output.startswith("x" * 16384)
    assert len(result.output) < 16384 + 200
    assert "9983617 more characters were not captured" in result.output
    assert elapsed < 1.0


def test_input_raises_eof_error_at_once(shared_pool):
    async def body(pool):
        session = await pool.open_session()
        return await session.run("input('number? ')", timeout_s=2.0)

    result = shared_pool(body)
    assert result.error == "EOFError" and not result.timed_out


def test_working_directory_is_private_writable_and_per_session(shared_pool):
    code = (
        "import os\nopen('note.txt', 'w').write('hi')\nst = os.stat('.')\n"
        "print(os.getcwd(), oct(st.st_mode & 0o777), st.st_uid == os.getuid())"
    )

    async def body(pool):
        first, second = await pool.open_session(), await pool.open_session()
        return await first.run(code), await second.run(code)

    first, second = shared_pool(body)
    assert first.error is None and second.error is None
    first_dir, first_mode, first_owned = first.output.split()
    second_dir = second.output.split()[0]
    assert first_dir != second_dir
    assert first_mode == "0o700" and first_owned == "True"


# Each cell prints when it ran by CLOCK_MONOTONIC, which all processes share: the tests compare
# intervals (order), not durations, so a loaded machine cannot make them fail.
TIMED_SLEEP = "import time\nt0 = time.monotonic()\ntime.sleep(0.5)\nprint(t0, time.monotonic())"


async def run_two_timed_cells(pool):
    """(started, [(start, end, result)] of two cells run at once in two sessions, by start)."""
    sessions = [await pool.open_session(), await pool.open_session()]
    started = time.monotonic()
    results = await asyncio.gather(*(s.run(TIMED_SLEEP) for s in sessions))
    assert all(r.error is None for r in results), results
    return started, sorted((*map(float, r.output.split()), r) for r in results)


def test_cells_of_two_sessions_run_concurrently(shared_pool):
    _, [(_, first_end, _), (second_start, _, _)] = shared_pool(run_two_timed_cells)
    assert second_start < first_end


def test_max_concurrent_cells_queues_cells_and_duration_excludes_the_wait():
    started, [(_, first_end, _), (second_start, second_end, queued)] = with_pool(
        run_two_timed_cells, max_concurrent_cells=1)
    assert first_end <= second_start
    # The queued cell waited at least the first one's 0.5 s sleep; that wait is not its duration.
    assert queued.duration_s >= 0.5
    assert queued.duration_s < (second_end - started) - 0.4


def test_event_loop_keeps_running_while_a_cell_runs(shared_pool):
    async def body(pool):
        session = await pool.open_session()
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        await session.run("import time\ntime.sleep(1)")
        task.cancel()
        return ticks

    assert shared_pool(body) >= 20  # of ~100 possible; a blocked loop gets 0 or 1 (50 flaked on a loaded machine)


@needs_root
def test_processes_a_cell_starts_do_not_outlive_it(shared_pool):
    code = "import subprocess\nprint(subprocess.Popen(['sleep', '60'], start_new_session=True).pid)"

    async def body(pool):
        others = set(pids_of_uids(pool.uid_range))  # other tests' sessions
        session = await pool.open_session()
        result = await session.run(code)
        return int(result.output), set(pids_of_uids(pool.uid_range)) - others, session.pid

    sleeper, new_pids, session_pid = shared_pool(body)
    assert not is_alive(sleeper)
    assert new_pids == {session_pid}


# Starts detached processes, then keeps the cell (and them) running.
BUSY_CELL_WITH_DETACHED_PROCESSES = (
    "import subprocess, os, time\nsubprocess.Popen(['sleep', '60'], start_new_session=True)\n"
    "if os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\ntime.sleep(60)"
)


@needs_root
def test_close_leaves_no_process_of_the_pool():
    async def main():
        pool = ExecutorPool()
        await pool.start()
        sessions = [await pool.open_session(), await pool.open_session()]
        busy = asyncio.create_task(sessions[0].run(BUSY_CELL_WITH_DETACHED_PROCESSES, timeout_s=60))
        await asyncio.sleep(0.5)
        pids = [pool.template_pid] + [s.pid for s in sessions] + pids_of_uids(pool.uid_range)
        await pool.close()
        await busy  # ends as a crash: its session was killed
        return pids, pool.uid_range

    pids, uids = asyncio.run(main())
    assert len(pids) >= 5  # template, two sessions, the detached sleep and the forked child
    assert wait_until(lambda: not any(is_alive(pid) for pid in pids), 2.0)
    assert pids_of_uids(uids) == []


KIT_SCRIPT = """
import asyncio, json, time
from kit.sandbox.pool import ExecutorPool

async def main():
    pool = ExecutorPool()
    await pool.start()
    session = await pool.open_session()
    asyncio.create_task(session.run({cell!r}, timeout_s=60))
    await asyncio.sleep(0.5)
    uids = pool.uid_range or range(0)  # no uids of its own when not root
    info = {{"pids": [pool.template_pid, session.pid], "uids": [uids.start, uids.stop]}}
    print(json.dumps(info), flush=True)
    {then}

asyncio.run(main())
"""


def start_kit(cell: str, then: str) -> tuple[subprocess.Popen, list[int], range]:
    """A separate kit process that opens a pool and a session, starts `cell`, then does `then`."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    code = KIT_SCRIPT.format(cell=cell, then=then)
    kit = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env, cwd=REPO_ROOT, text=True)
    info = json.loads(kit.stdout.readline())
    return kit, info["pids"], range(*info["uids"])


@needs_root
def test_kit_exiting_without_close_leaves_no_process():
    kit, pids, uids = start_kit(BUSY_CELL_WITH_DETACHED_PROCESSES, then="pass  # no close(): atexit must clean up")
    assert kit.wait(timeout=30) == 0
    assert not any(is_alive(pid) for pid in pids)
    assert pids_of_uids(uids) == []


def test_sigkilled_kit_takes_template_and_busy_sessions_with_it():
    # The session is busy, so only PR_SET_PDEATHSIG can stop it.
    kit, pids, uids = start_kit("while True: pass", then="time.sleep(60)")
    kit.send_signal(signal.SIGKILL)
    kit.wait()
    try:
        assert wait_until(lambda: not any(is_alive(pid) for pid in pids), 3.0)
    finally:
        sweep_uids(uids)
        for base in {tempfile.gettempdir(), "/tmp"}:  # the kit falls back to /tmp if TMPDIR is private
            for leftover in Path(base).glob(f"kit-sandbox-{kit.pid}-*"):
                shutil.rmtree(leftover)


@pytest.mark.parametrize(
    "garbage",
    [
        "b'\\xff\\xff\\xff\\xff'",
        "struct.pack('!I', 9) + b'not json!'",
        "struct.pack('!I', 5) + b'[1,2]'",
        "struct.pack('!I', 200000) + b'[' * 200000",
    ],
    ids=["oversize", "not-json", "not-an-object", "deeply-nested"],
)
def test_malformed_reply_counts_as_a_crash(garbage, shared_pool):
    # The cell writes raw bytes to its own socket; they arrive before the real reply.
    code = (
        "import os, struct\n"
        "for fd in range(3, 256):\n"
        "    try:\n"
        "        is_socket = os.readlink(f'/proc/self/fd/{fd}').startswith('socket:')\n"
        "    except OSError:\n"
        "        continue\n"
        "    if is_socket:\n"
        f"        os.write(fd, {garbage})\n"
    )

    async def body(pool):
        session = await pool.open_session()
        result = await session.run(code)
        return result, await session.run("1 + 1")

    result, after = shared_pool(body)
    assert result.error == "SandboxCrash" and result.state_reset
    assert after.output == "2\n"
