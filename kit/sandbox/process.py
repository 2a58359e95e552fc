"""OS-level handling of sandbox processes, for kit.sandbox.pool: the kit's view of one
session process (``SessionProcess``), the JSON-only reply protocol, killing every process of
a uid range, the pool's directories and the template's environment. kit.sandbox.pool's
docstring says what the sandbox as a whole guarantees."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
HEADER = struct.Struct("!I")
SWEEP_DEADLINE_S = 5.0
POOL_DIR_PREFIX = "kit-sandbox-"
# First line faulthandler writes to a session's crash file -> the fatal signal.
CRASH_SIGNALS = {"Segmentation fault": "SIGSEGV", "Floating point exception": "SIGFPE", "Aborted": "SIGABRT",
                 "Bus error": "SIGBUS", "Illegal instruction": "SIGILL"}


class SandboxProtocolError(Exception):
    """A session sent something other than a well-formed reply; it is treated as crashed."""


def parse_reply(body: bytes) -> dict:
    """Decode one untrusted message body: JSON object or SandboxProtocolError, nothing else."""
    try:
        message = json.loads(body)
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise SandboxProtocolError(f"malformed JSON: {error}") from None
    if not isinstance(message, dict):
        raise SandboxProtocolError("reply is not a JSON object")
    return message


def _proc_uid_and_state(pid: int) -> tuple[int, str]:
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    return int(fields["Uid"].split()[0]), fields["State"].strip()[:1]


def sweep_uids(uids: range) -> None:
    """SIGKILL every process whose real uid is in `uids`; again until none is left (fork bombs)."""
    deadline = time.monotonic() + SWEEP_DEADLINE_S
    while time.monotonic() < deadline:
        signalled = 0
        for pid in (int(name) for name in os.listdir("/proc") if name.isdigit()):
            try:
                if _proc_uid_and_state(pid)[0] not in uids:
                    continue
                pidfd = os.pidfd_open(pid)
            except (OSError, KeyError, ValueError):  # it exited since listdir: nothing to kill
                continue
            try:
                # Checked again once the pidfd pins the process: the pid may have been reused.
                uid, state = _proc_uid_and_state(pid)
                if uid in uids and state not in ("Z", "X"):
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                    signalled += 1
            except (OSError, KeyError, ValueError):  # it exited meanwhile: nothing to kill
                pass
            finally:
                os.close(pidfd)
        if not signalled:
            return
        time.sleep(0.002)


def read_bounded(path: str, limit: int) -> str:
    """First `limit` bytes of a file the sandbox wrote, as text (the file itself is kit-owned)."""
    try:
        with open(path, "rb") as file:
            data = file.read(limit)
            size = os.fstat(file.fileno()).st_size
    except OSError:  # the session died before creating it: it wrote nothing
        return ""
    text = data.decode("utf-8", "replace")
    if size > len(data):
        text += f"\n[output truncated: {size - len(data)} more characters were not captured]\n"
    return text


def sandbox_tmp_dir() -> str:
    """Where pool directories go: sessions run as other uids, so every ancestor must let them pass."""
    base = Path(tempfile.gettempdir()).resolve()
    return str(base) if all(path.stat().st_mode & 0o001 for path in (base, *base.parents)) else "/tmp"


def remove_stale_pool_dirs(base: str) -> None:
    """Pool directories left by kits that were SIGKILLed (the pid in the name no longer runs)."""
    for path in Path(base).glob(f"{POOL_DIR_PREFIX}*-*"):
        pid = path.name[len(POOL_DIR_PREFIX) :].split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(path, ignore_errors=True)


def template_env() -> dict[str, str]:
    # A minimal environment: the model's code can read it, so no tokens or keys from the kit's.
    env = {name: os.environ[name] for name in ("PATH", "LANG", "LC_ALL", "LD_LIBRARY_PATH") if name in os.environ}
    python_path = [str(REPO_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env.update(PYTHONPATH=os.pathsep.join(python_path), PYTHONDONTWRITEBYTECODE="1")
    # Read by numpy's BLAS at import time: no thread pools in the template or the sessions.
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


@dataclass(eq=False)
class SessionProcess:
    """The kit's view of one live session process: its pid, pidfd, uid, directory and socket."""

    pid: int
    pidfd: int  # -1 once closed; signals go through it, so a reused pid is never hit
    uid: int | None  # None when not root
    directory: str
    max_reply_bytes: int
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None

    async def read_message(self) -> dict:
        header = await self.reader.readexactly(HEADER.size)
        (size,) = HEADER.unpack(header)
        if size > self.max_reply_bytes:
            raise SandboxProtocolError(f"reply of {size} bytes exceeds {self.max_reply_bytes}")
        return parse_reply(await self.reader.readexactly(size))

    async def execute(self, code: str) -> tuple[str, str | None]:
        body = json.dumps({"code": code}).encode()
        self.writer.write(HEADER.pack(len(body)) + body)
        await self.writer.drain()
        reply = await self.read_message()
        output, error = reply.get("output"), reply.get("error")
        if not isinstance(output, str) or not (error is None or isinstance(error, str)):
            raise SandboxProtocolError("reply lacks a string 'output' or a valid 'error'")
        return output, error

    def kill(self, close_pidfd: bool = False) -> None:
        """SIGKILL the session (and, as non-root, its process group). Idempotent, never blocks."""
        if self.pidfd < 0:
            return
        try:
            if self.uid is None:
                # Only while the leader lives is its pid surely still our process group's id.
                signal.pidfd_send_signal(self.pidfd, 0)
                os.killpg(self.pid, signal.SIGKILL)
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        except ProcessLookupError:  # already dead, which is what killing asks for
            pass
        if close_pidfd:
            os.close(self.pidfd)
            self.pidfd = -1

    def crash_reason(self) -> str:
        crash_note = read_bounded(os.path.join(self.directory, "crash"), 200)
        for message, name in CRASH_SIGNALS.items():
            if crash_note.startswith(f"Fatal Python error: {message}"):
                return f"signal {name}"
        return "it exited or was killed without replying, e.g. os._exit() or out of memory"
