"""The sandbox from inside: cells that damage the interpreter, the network and /tmp of a session,
and binary output (kit.sandbox.pool's guarantees; one property per test)."""

import asyncio
import logging
import os
import subprocess
import time
import uuid

import pytest

from kit.config import ExecutorConfig
from kit.sandbox.pool import ExecutorPool

CAPTURE = 16384


def namespaces_supported(flag: str) -> bool:
    """Whether this machine lets root create the namespace (`unshare -n` / `unshare -m`)."""
    if os.geteuid() != 0:
        return False
    try:
        return subprocess.run(["unshare", flag, "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def pool_and_log():
    """One pool for the module, with what kit.sandbox.pool logged while it started."""
    records = _Records()
    logger = logging.getLogger("kit.sandbox.pool")
    logger.addHandler(records)
    logger.setLevel(logging.INFO)
    loop = asyncio.new_event_loop()
    pool = ExecutorPool(ExecutorConfig(max_concurrent_cells=2, capture_chars=CAPTURE))
    try:
        loop.run_until_complete(pool.start())
    finally:
        logger.removeHandler(records)
    yield (lambda body: loop.run_until_complete(body(pool))), records.messages
    loop.run_until_complete(pool.close())
    loop.close()


@pytest.fixture
def run_cells(pool_and_log):
    """Runs cells one after the other in a fresh session; returns their results."""

    def run(*cells):
        async def body(pool):
            session = await pool.open_session()
            try:
                return [await session.run(cell) for cell in cells]
            finally:
                await session.close()

        return pool_and_log[0](body)

    return run


def test_builtins_restored_after_cell(run_cells):
    damage = "import builtins\nbuiltins.print = lambda *a, **k: None\ndel builtins.len\nbuiltins.__import__ = None"
    damaged, after = run_cells(damage, "import json\nprint(len([1, 2, 3]), json.dumps('ok'))")
    assert not damaged.state_reset  # repaired in place, not by a restart
    assert after.error is None and after.output == '3 "ok"\n'


def test_sys_modules_restored(run_cells):
    damage = "import sys\nsys.modules['json'] = None\ndel sys.modules['os']\nsys.modules['math'] = 'fake'"
    damaged, after = run_cells(damage, "import json, os, math\nprint(json.dumps([1]), os.sep, math.sqrt(4))")
    assert not damaged.state_reset  # repaired in place, not by a restart
    assert after.error is None and after.output == "[1] / 2.0\n"


def test_reply_path_ignores_patched_modules(run_cells):
    # What the session server calls between cells; print() must still reach the capture, the traceback
    # its formatting, and the reply the kit.
    damage = (
        "import os, json, traceback, socket, ast\nos.write = lambda fd, data: len(data)\nos.read = lambda fd, n: b''\n"
        "json.dumps = json.loads = lambda *a, **k: '{}'\ntraceback.format_exception_only = lambda *a, **k: []\n"
        "socket.socket.sendall = socket.socket.recv = lambda *a: None\nast.parse = None"
    )
    damaged, after = run_cells(damage, "print('text')\nraise ValueError('shown')")
    assert not damaged.state_reset  # repaired in place, not by a restart
    assert after.error == "ValueError"
    assert after.output.startswith("text\nTraceback") and after.output.endswith("ValueError: shown\n")


def test_stdout_replaced_is_restored(run_cells):
    damage = "import sys, io\nsys.stdout = io.StringIO()\nsys.stderr = io.StringIO()"
    damaged, after = run_cells(damage, "import sys\nprint('out')\nprint('err', file=sys.stderr)")
    assert not damaged.state_reset  # repaired in place, not by a restart
    assert after.output == "out\nerr\n"


def test_stdout_object_damaged_is_fresh_in_the_next_cell(run_cells):
    damage = "import sys\ntype(sys.stdout).write = lambda self, text: len(text)\nsys.stderr.write = None\nsys.stdout.close()"
    damaged, after = run_cells(damage, "import sys\nprint('out')\nprint('err', file=sys.stderr)")
    assert not damaged.state_reset  # repaired in place, not by a restart
    assert after.error is None and after.output == "out\nerr\n"


def test_dunder_stdout_is_the_capture(run_cells):
    # The usual way back from a redirect; the interpreter's original stdout would buffer it away.
    code = "import sys, io\nsys.stdout = io.StringIO()\nprint('hidden')\nsys.stdout = sys.__stdout__\nprint('shown')"
    (result,) = run_cells(code)
    assert result.output == "shown\n"


def test_standard_descriptors_restored(run_cells):
    damage = "import os\nos.close(1)\nos.dup2(os.open(os.devnull, os.O_WRONLY), 2)"
    damaged, after = run_cells(damage, "import os, subprocess\nsubprocess.run(['echo', 'child'])\nos.write(2, b'fd2\\n')\nNone")
    assert not damaged.state_reset  # repaired in place, not by a restart
    assert after.error is None and after.output == "child\nfd2\n"


def test_own_descriptors_replaced_is_a_crash(run_cells):
    # Puts another file behind the session's own descriptors for its output file: the session
    # server cannot repair that, so it must die (the kit restarts it and says so), not answer wrongly.
    damage = (
        "import os\nkeep = 'lost'\nfor fd in range(3, 64):\n    try:\n        target = os.readlink(f'/proc/self/fd/{fd}')\n"
        "    except OSError:\n        continue\n    if target.endswith('/output'):\n"
        "        os.dup2(os.open('decoy', os.O_RDWR | os.O_CREAT), fd)"
    )
    damaged, alive, gone = run_cells(damage, "print('alive')", "keep")
    assert damaged.error == "SandboxCrash" and damaged.state_reset
    assert "variables are lost" in damaged.output
    assert alive.output == "alive\n"
    assert gone.error == "NameError"


def test_trace_function_removed_after_cell(run_cells):
    damaged, after = run_cells("import sys\nsys.settrace(lambda *a: None)\nsys.setprofile(lambda *a: None)",
                         "import sys\nsys.gettrace(), sys.getprofile()")
    assert not damaged.state_reset
    assert after.output == "(None, None)\n"


def test_main_module_is_the_cells_namespace(run_cells):
    code = "import __main__, pickle\ndef f():\n    return 6 * 7\nprint(__main__.f is f, pickle.loads(pickle.dumps(f))())"
    (result,) = run_cells(code)
    assert result.error is None and result.output == "True 42\n"


@pytest.mark.skipif(not namespaces_supported("-n"), reason="this machine forbids network namespaces (or not root)")
def test_network_namespace_has_no_interfaces_but_lo(run_cells, pool_and_log):
    code = (
        "import socket\nprint(socket.if_nameindex())\ntry:\n    socket.create_connection(('1.1.1.1', 53), timeout=2)\n"
        "except OSError as error:\n    print(type(error).__name__)"
    )
    (result,) = run_cells(code)
    assert result.output == "[(1, 'lo')]\nOSError\n"
    assert any(m.startswith("sandbox network: isolated (empty network namespace)") for m in pool_and_log[1])


@pytest.mark.skipif(not namespaces_supported("-m"), reason="this machine forbids mount namespaces (or not root)")
def test_private_tmp(run_cells, pool_and_log):
    name = f"/tmp/kit-hardening-{uuid.uuid4().hex}"
    write = f"import os\nopen({name!r}, 'w').write('mine')\nprint(os.path.isdir(os.getcwd()), os.path.exists({name!r}))"
    written, = run_cells(write)
    other, = run_cells(f"import os\nos.path.exists({name!r})")
    assert written.output == "True True\n"  # the working directory keeps its absolute path
    assert other.output == "False\n" and not os.path.exists(name)
    assert any("sandbox /tmp: private" in m for m in pool_and_log[1])


def test_stdout_buffer_binary_writes(run_cells):
    code = "import sys\nsys.stdout.buffer.write(b'ab')\nprint('c')\nsys.stderr.buffer.write(bytearray(b'd\\n'))\nNone"
    (result,) = run_cells(code)
    assert result.error is None and result.output == "abc\nd\n"


def test_stdout_buffer_binary_writes_bounded(run_cells):
    code = "import sys\nprint('t' * 10000)\nn = sys.stdout.buffer.write(memoryview(b'b' * 10_000_000))\nprint(n, file=sys.stderr)"
    started = time.monotonic()
    (result,) = run_cells(code)
    elapsed = time.monotonic() - started
    assert result.error is None
    kept, _, note = result.output.partition("\n[output truncated: ")
    # Text and bytes share one budget: 10 001 text bytes, then bytes up to the limit.
    assert kept == "t" * 10000 + "\n" + "b" * (CAPTURE - 10001)
    assert note == f"{10_000_000 - (CAPTURE - 10001) + len('10000000') + 1} more characters were not captured]\n"
    assert elapsed < 2.0
