"""Sandboxed, persistent Python sessions for model-written code (the tool of SC-TIR).

Every candidate owns a `Session`: an interpreter with math, numpy (as np) and sympy imported
whose variables persist from cell to cell, like a Jupyter kernel. Sessions are os.fork()s of
one warm template process (kit.sandbox.worker), so opening one costs milliseconds. All of it
is asyncio; nothing blocks the event loop for more than a few system calls.

Guaranteed:
- a wall-clock timeout per cell; the session is then killed and transparently replaced, and
  the result says that its variables are lost (same after a crash or os._exit);
- caps per session process: memory (RLIMIT_AS; each process of a session has its own), and
  processes+threads (RLIMIT_NPROC), exact when the kit runs as root, because each session
  then runs under its own uid from a pool-specific range: at most 128 sessions are open at
  once, and opening another waits until one is closed;
- opening, running and closing a session are safe to cancel at any await (early stop and
  deadlines do): a cancelled open takes no uid and leaves no process or directory, a session
  is always paired with the process its request started, and the clean-up of a discarded or
  replaced session runs in a task of the pool's own that the caller's cancellation cannot
  stop (close() waits for those tasks, then redoes the work of any that failed);
- a private working directory per session (also HOME and TMPDIR), no stdin;
- no network, where the kernel allows it (root with CAP_SYS_ADMIN; tried once when the pool
  starts, and logged: "sandbox network: isolated (empty network namespace)" or "not
  isolated: <reason>"): each session gets an empty network namespace (only a loopback, down)
  before it drops root, so no address can be reached, nor abstract Unix sockets of the host;
- a private /tmp, under the same condition ("sandbox /tmp: private ..." in the same log line):
  a mount namespace per session with the session's own directory bound on /tmp (about 0.5 ms,
  like the network namespace);
- captured, bounded output: at most about `capture_chars` per cell is kept, the rest counted,
  for text and for binary writes to sys.stdout.buffer/sys.stderr.buffer alike;
- a cell that damages the interpreter does not make later cells answer wrongly: builtins, sys
  (stdout, stderr, __stdout__, ...) and the entries of sys.modules that the session starts
  with are put back after every cell, as are descriptors 0-2 and trace/profile functions;
  sys.stdout and the like are fresh objects in every cell; the session's reply path calls only
  functions it captured at start; where a cell broke what cannot be put back (the session's
  own descriptors) the session dies and is replaced, reported as a crash (variables lost);
- crashes, sys.exit, os._exit, fork bombs and huge prints are contained; as root, processes
  a cell starts (detached ones too) are killed when the cell ends, so only running cells use
  CPU (threads a cell starts in the interpreter itself do live on);
- no process is left behind when the kit ends normally (close(), else atexit): as root every
  process of the pool's uids is killed, including ones the model code detached;
- the kit never unpickles anything from the sandbox: replies are size-capped JSON, and
  anything malformed means the session is treated as crashed.

NOT guaranteed:
- network isolation where namespaces are forbidden (non-root, or a container that denies
  unshare): run the kit in a container without network then; Unix sockets in the file system
  stay reachable as their permissions allow;
- against a cell that goes after the session server's own objects on purpose (frames, gc, ctypes,
  sys.addaudithook): it can forge its own session's replies (never more than malformed or
  wrong output for that candidate); attributes a cell rebinds in other modules (os.write,
  numpy) stay rebound for its later cells, as in any Python session;
- secrecy of world-readable files (the repository, /etc, site-packages);
- protection of /dev/shm and of /tmp where mount namespaces are forbidden (only file size is
  capped there);
- CPU fairness beyond `max_concurrent_cells`: processes a cell forks are capped in number only;
- as non-root, much weaker isolation: sessions share the kit's uid, so they can read each
  other's files and signal (or, if ptrace is allowed, inspect) each other, the template and
  the kit; RLIMIT_NPROC is the user's task count at start plus the cap, so approximate;
  processes a cell starts outlive it; and killing a session goes by process group, so
  processes that call setsid() escape.

If the kit is SIGKILLed, PR_SET_PDEATHSIG takes the template (it follows the thread that
called start(), normally the event loop's) and every session. Processes the model code forked
survive that; as root, the next pool with the same uid range (same kit pid modulo 100 000)
kills them when it starts; as non-root nothing does.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass

from kit.config import ExecutorConfig
from kit.sandbox.process import (
    POOL_DIR_PREFIX,
    REPO_ROOT,
    SandboxProtocolError,
    SessionProcess,
    read_bounded,
    remove_stale_pool_dirs,
    sandbox_tmp_dir,
    sweep_uids,
    template_env,
)

MAX_REPLY_BYTES = 1 << 20
UID_BASE = 1_000_000
UIDS_PER_POOL = 128
UID_BLOCKS = 100_000
FILE_SIZE_MB = 64
TEMPLATE_START_TIMEOUT_S = 120.0
SESSION_START_TIMEOUT_S = 30.0
_pools_to_tear_down: set[ExecutorPool] = set()
_uid_blocks_in_use: set[int] = set()
log = logging.getLogger(__name__)


@dataclass
class CellResult:
    output: str  # stdout+stderr, then the cleaned traceback if any; capture-limited, not truncated
    error: str | None  # exception class name; "TimeoutError" on timeout; "SandboxCrash" when it died
    timed_out: bool
    state_reset: bool  # the interpreter was replaced (timeout, crash, os._exit): variables are gone
    duration_s: float  # wall time of the execution itself, not of the wait for a free slot


class ExecutorPool:
    """Template process + sessions; see the module docstring for what is and is not guaranteed."""

    def __init__(self, config: ExecutorConfig | None = None):
        self.config = config or ExecutorConfig()
        self.max_concurrent_cells = self.config.concurrent_cells()
        self.cell_timeout_s = self.config.cell_timeout_s
        self.memory_mb = self.config.memory_mb
        self.max_processes = self.config.max_processes
        self.capture_chars = self.config.capture_chars
        self.as_root = os.geteuid() == 0
        self.closed = False
        self._cell_slots = asyncio.Semaphore(self.max_concurrent_cells)
        self._start_lock = asyncio.Lock()
        self._control_lock = asyncio.Lock()
        self._template: subprocess.Popen | None = None
        self._control: socket.socket | None = None
        self._root_dir: str | None = None
        self._uid_block: int | None = None
        self._free_uid_slots: deque[int] = deque(range(UIDS_PER_POOL))
        # Counts _free_uid_slots: opening waits on it (a cancelled wait takes no slot).
        self._uid_slots = asyncio.Semaphore(UIDS_PER_POOL)
        self._processes: set[SessionProcess] = set()
        self._sessions_started = 0
        self._background: set[asyncio.Future] = set()

    @property
    def template_pid(self) -> int | None:
        return None if self._template is None else self._template.pid

    @property
    def uid_range(self) -> range | None:
        """The uids of this pool's sessions (root only), e.g. for checking nothing survived."""
        if self._uid_block is None:
            return None
        base = UID_BASE + self._uid_block * UIDS_PER_POOL
        return range(base, base + UIDS_PER_POOL)

    @property
    def free_uid_slots(self) -> int:
        """Uids not held by a session or by its pending clean-up (always all of them as non-root)."""
        return len(self._free_uid_slots)

    @property
    def session_processes(self) -> int:
        """Session processes the pool holds (live, or killed and not yet cleaned up)."""
        return len(self._processes)

    @property
    def session_dirs(self) -> list[str]:
        """Names of the session directories under the pool's directory."""
        return [] if self._root_dir is None else sorted(os.listdir(self._root_dir))

    async def settle(self) -> None:
        """Wait until the background clean-up (discarded sessions, abandoned opens) is done."""
        while self._background:
            await asyncio.wait(set(self._background))

    async def open_session(self) -> Session:
        await self.start()
        return Session(self, await self._spawn_process())

    async def __aenter__(self) -> ExecutorPool:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        async with self._start_lock:
            if self.closed:
                raise RuntimeError("the executor pool is closed")
            if self._template is None:
                _pools_to_tear_down.add(self)
                try:
                    await self._start_template()
                except BaseException:
                    await self.close()
                    raise

    async def _start_template(self) -> None:
        if self.as_root:
            # Several pools may live in one kit process; each takes its own uid block.
            block = os.getpid() % UID_BLOCKS
            while block in _uid_blocks_in_use:
                block = (block + 1) % UID_BLOCKS
            _uid_blocks_in_use.add(block)
            self._uid_block = block
            # Leftovers of an earlier kit that had the same block (it was SIGKILLed).
            await asyncio.to_thread(sweep_uids, self.uid_range)
        base = sandbox_tmp_dir()
        await asyncio.to_thread(remove_stale_pool_dirs, base)
        self._root_dir = tempfile.mkdtemp(prefix=f"{POOL_DIR_PREFIX}{os.getpid()}-", dir=base)
        os.chmod(self._root_dir, 0o711)  # sessions may traverse to their directory, not list it
        kit_end, template_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        kit_end.setblocking(False)
        self._control = kit_end
        config = {"control_fd": template_end.fileno(), "kit_pid": os.getpid(), "capture_bytes": self.capture_chars,
                  "memory_mb": self.memory_mb, "max_processes": self.max_processes, "file_size_mb": FILE_SIZE_MB}
        command = [sys.executable, "-m", "kit.sandbox.worker", json.dumps(config)]
        with template_end:
            # Started from the loop's thread: the template's PR_SET_PDEATHSIG follows this thread.
            self._template = subprocess.Popen(command, pass_fds=[template_end.fileno()], cwd=REPO_ROOT,
                                              env=template_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        async with asyncio.timeout(TEMPLATE_START_TIMEOUT_S):
            reply, _fds = await self._control_recv()
        if reply.get("ready") is not True:
            raise RuntimeError(f"the sandbox template failed to start: {reply}")
        log.log(logging.INFO if reply["network"].startswith("isolated") else logging.WARNING,
                "sandbox network: %s; sandbox /tmp: %s", reply["network"], reply["tmp"])

    async def close(self) -> None:
        """Kill every session and the template, sweep the pool's uids, remove the directories."""
        if self.closed:
            return
        self.closed = True
        for process in self._processes:
            if process.writer is not None:
                process.writer.close()
        self._kill_processes()
        self._uid_slots.release()  # an open waiting for a uid wakes, and wakes the next, to fail
        # With every process dead, the background clean-up and opens in flight end at once;
        # waited for rather than cancelled, so that no caller gets a cancellation it never asked for.
        await self.settle()
        if self._control is not None:
            self._control.close()
        await asyncio.to_thread(self._tear_down)

    def _kill_processes(self) -> None:
        for process in list(self._processes):
            process.kill(close_pidfd=True)
        self._processes.clear()
        if self._template is not None and self._template.poll() is None:
            self._template.kill()

    def _tear_down(self) -> None:
        """Blocking and idempotent; run by close() in a thread, and by atexit if close() never ran."""
        self._kill_processes()
        if self._template is not None:
            self._template.wait(timeout=10)
        if self.uid_range is not None:
            sweep_uids(self.uid_range)
            _uid_blocks_in_use.discard(self._uid_block)
        if self._root_dir is not None:
            shutil.rmtree(self._root_dir, ignore_errors=True)
        _pools_to_tear_down.discard(self)

    async def _control_recv(self) -> tuple[dict, list[int]]:
        """One message (and its file descriptors) from the template, without blocking the loop."""
        loop = asyncio.get_running_loop()
        fd = self._control.fileno()
        while True:
            try:
                data, fds, _flags, _address = socket.recv_fds(self._control, 65536, 2)
                break
            except BlockingIOError:
                readable = loop.create_future()
                loop.add_reader(fd, lambda future=readable: future.done() or future.set_result(None))
                try:
                    await readable
                finally:
                    loop.remove_reader(fd)
        if not data:
            raise RuntimeError("the sandbox template process died")
        return json.loads(data), fds

    async def _spawn_process(self) -> SessionProcess:
        """A new session process, started by its own request; safe to cancel at any await."""
        if self.closed:
            raise RuntimeError("the executor pool is closed")
        uid = None
        if self.as_root:
            await self._uid_slots.acquire()  # waits while every uid is in use
            if self.closed:
                self._uid_slots.release()
                raise RuntimeError("the executor pool is closed")
            # Oldest-freed first, so a just-swept uid has time to lose its dying processes.
            uid = self.uid_range.start + self._free_uid_slots.popleft()
        self._sessions_started += 1
        directory = os.path.join(self._root_dir, f"session-{self._sessions_started}")
        # A task of its own, which the caller's cancellation cannot reach: cancelled between
        # request and reply, the template's replies would answer the next requests, one behind.
        start = self._in_background(self._start_process(uid, directory))
        try:
            return await asyncio.shield(start)
        except asyncio.CancelledError:
            start.add_done_callback(self._discard_unclaimed)
            raise

    async def _start_process(self, uid: int | None, directory: str) -> SessionProcess:
        try:
            async with self._control_lock:
                request = json.dumps({"uid": uid, "dir": directory}).encode()
                await asyncio.get_running_loop().sock_sendall(self._control, request)
                reply, fds = await self._control_recv()
        except BaseException:
            self._release_uid(uid)
            raise
        if "pid" not in reply or len(fds) != 2:
            for fd in fds:
                os.close(fd)
            self._release_uid(uid)
            raise RuntimeError(f"the sandbox template could not start a session: {reply}")
        max_reply_bytes = max(MAX_REPLY_BYTES, 16 * self.capture_chars)
        process = SessionProcess(reply["pid"], fds[1], uid, directory, max_reply_bytes)
        self._processes.add(process)
        try:
            process.reader, process.writer = await asyncio.open_unix_connection(sock=socket.socket(fileno=fds[0]))
            async with asyncio.timeout(SESSION_START_TIMEOUT_S):
                hello = await process.read_message()
            if hello != {"ready": True}:
                raise RuntimeError(f"the sandbox session failed to start: {hello}")
        except BaseException:
            await self._discard(process)
            raise
        return process

    def _discard_unclaimed(self, start: asyncio.Task) -> None:
        """Done-callback of a session start whose caller was cancelled: nobody will use it."""
        if start.cancelled():
            return
        if start.exception() is not None:
            log.warning("a sandbox session nobody waited for failed to start: %r", start.exception())
        elif not self.closed:
            self._discard_later(start.result())

    def _in_background(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _discard_later(self, process: SessionProcess) -> asyncio.Task:
        """Discard a session in the background: it finishes even if the caller is cancelled."""
        task = self._in_background(self._discard(process))
        task.add_done_callback(_log_failed_clean_up)
        return task

    def _release_uid(self, uid: int | None) -> None:
        if uid is not None:
            self._free_uid_slots.append(uid - self.uid_range.start)
            self._uid_slots.release()

    async def _discard(self, process: SessionProcess) -> None:
        """Kill a session process and everything it started, then delete its directory. The
        process stays in _processes until its pidfd is closed, so that close() can finish the job."""
        process.kill()
        if process.writer is not None:
            process.writer.close()
        if process.uid is not None:
            await asyncio.to_thread(sweep_uids, range(process.uid, process.uid + 1))
        await asyncio.to_thread(shutil.rmtree, process.directory, True)
        process.kill(close_pidfd=True)
        self._processes.discard(process)
        self._release_uid(process.uid)


def _log_failed_clean_up(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("discarding a sandbox session failed (close() redoes it): %r", task.exception())


class Session:
    """A candidate's persistent interpreter; cells run one at a time, in order. The session
    process behind it is replaced after a timeout or a crash (the variables are then lost)."""

    def __init__(self, pool: ExecutorPool, process: SessionProcess):
        self._pool = pool
        self._process: SessionProcess | None = process
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def pid(self) -> int | None:
        """Pid of the current session process (it changes when the interpreter is replaced)."""
        return None if self._process is None else self._process.pid

    @property
    def uid(self) -> int | None:
        """Uid the current session process was asked to run under (None as non-root)."""
        return None if self._process is None else self._process.uid

    @property
    def directory(self) -> str | None:
        """The current session process's directory (its working directory is `work` inside)."""
        return None if self._process is None else self._process.directory

    async def run(self, code: str, timeout_s: float | None = None) -> CellResult:
        timeout_s = self._pool.cell_timeout_s if timeout_s is None else timeout_s
        async with self._lock:
            if self._closed:
                raise RuntimeError("the session is closed")
            if self._process is None:  # an earlier replacement failed; try again
                self._process = await self._pool._spawn_process()
            process = self._process
            async with self._pool._cell_slots:
                started = time.monotonic()
                try:
                    # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a
                    # cancellation that arrives as the cell finishes, and the cancelled
                    # candidate would go on generating past its problem's deadline.
                    async with asyncio.timeout(timeout_s):
                        output, error = await process.execute(code)
                    return CellResult(output, error, False, False, time.monotonic() - started)
                except TimeoutError:
                    timed_out = True
                    reason = f"TimeoutError: cell exceeded {float(timeout_s)} s"
                except (SandboxProtocolError, OSError, EOFError):  # IncompleteReadError is an EOFError
                    timed_out = False
                    reason = ""
                except asyncio.CancelledError:
                    # The cell may still run and its reply would answer the next cell: replace it.
                    process.kill()
                    self._process = None
                    self._pool._discard_later(process)
                    raise
                duration_s = time.monotonic() - started
            # Recovery happens outside the slot: it is not the cell's execution.
            process.kill()
            partial = read_bounded(os.path.join(process.directory, "output"), self._pool.capture_chars)
            if not timed_out:
                reason = f"SandboxCrash: the interpreter died ({process.crash_reason()})"
            self._process = None
            # Shielded: a deadline landing here must not stop the uid and directory coming back.
            await asyncio.shield(self._pool._discard_later(process))
            if not self._pool.closed:
                try:
                    self._process = await self._pool._spawn_process()
                except RuntimeError as error:  # the next run() tries again and raises if it still cannot
                    log.warning("could not replace a sandbox session: %s", error)
            if partial and not partial.endswith("\n"):
                partial += "\n"
            output = f"{partial}{reason}; the interpreter was restarted and its variables are lost"
            return CellResult(output, "TimeoutError" if timed_out else "SandboxCrash", timed_out, True, duration_s)

    async def close(self) -> None:
        """Discard the session (after a cell in progress); finishes even if the caller is cancelled."""
        self._closed = True
        await asyncio.shield(self._pool._in_background(self._close()))

    async def _close(self) -> None:
        async with self._lock:
            process, self._process = self._process, None
            if process is not None and not self._pool.closed:
                await self._pool._discard(process)


@atexit.register
def _tear_down_all_pools() -> None:
    for pool in list(_pools_to_tear_down):
        pool._tear_down()
