"""Code that runs inside the sandbox of kit.executor: the template process and its sessions.

Started by the kit as ``python -m kit.sandbox_worker CONFIG_JSON``. The process imports numpy,
sympy and math once, warms sympy up, and becomes the *template*: it waits on a SOCK_SEQPACKET
control socket for spawn requests ``{"uid": int | null, "dir": str}`` and answers each with
``{"pid": int}`` plus two file descriptors passed by SCM_RIGHTS: the kit's end of the new
session's stream socket and a pidfd of the session process. The template exits when the kit
closes the control socket, and is SIGKILLed by the kernel when the kit dies.

A session is an os.fork() of the template, so it starts in milliseconds with everything already
imported. It confines itself (see ``_SessionProcess.confine``), then serves cells over its stream
socket: each message is a 4-byte big-endian length followed by UTF-8 JSON; requests are
``{"code": str}``, replies ``{"output": str, "error": str | null}``. The first message a session
sends is ``{"ready": true}`` or ``{"setup_error": str}``. With a uid of its own, a session kills
every other process of that uid after each cell: what a cell starts does not outlive it.

This module must stay free of kit imports: it is the only kit code that runs next to model code.
"""

import ast
import builtins
import ctypes
import faulthandler
import gc
import importlib
import io
import json
import linecache
import math
import os
import resource
import signal
import socket
import struct
import sys
import tempfile
import traceback
import types

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
HEADER = struct.Struct("!I")
MAX_REQUEST_BYTES = 64 << 20
CELL_FILENAME = "<cell>"
MAX_ERROR_NAME_CHARS = 100
# Imported by the template so that sessions get them for free (numpy loads submodules lazily).
WARM_MODULES = (
    "numpy.random", "numpy.fft", "numpy.polynomial", "numpy.linalg", "itertools", "functools", "fractions",
    "decimal", "collections", "random", "re", "heapq", "bisect", "statistics", "secrets", "string", "cmath",
)
_PACKAGE_PATHS: list[list[str]] = []


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl({option}) failed: {os.strerror(errno)}")


def _set_limit(kind: int, value: int) -> None:
    # Never try to raise a hard limit: that fails when we are not root.
    _, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(kind, (value, value))


def _tasks_of_uid(uid: int) -> int:
    """Threads (RLIMIT_NPROC counts threads) that the user already runs, from /proc."""
    total = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except OSError:
            continue
        if int(fields["Uid"].split()[0]) == uid:
            total += int(fields["Threads"])
    return total


def _open_import_dirs() -> dict[str, int]:
    """Handles on the import directories, opened while still privileged (see _reroute_imports)."""
    handles = {}
    for entry in sys.path:
        if entry and os.path.isdir(entry):
            handles[entry] = os.open(entry, os.O_PATH | os.O_DIRECTORY)
    return handles


def _reroute_imports(handles: dict[str, int]) -> None:
    """Keep imports working when Python lives in a directory the session uid cannot enter.

    E.g. /root/.pyenv under a 0700 /root. A process can always open paths through its own
    /proc/self/fd links, so import directories the new uid cannot reach are replaced, in
    sys.path and in the __path__ of every loaded package, by the handle opened before setuid.
    Only traversal is bypassed: the files must still be readable to the session uid.
    """
    reroute = {entry: f"/proc/self/fd/{fd}" for entry, fd in handles.items() if not os.access(entry, os.R_OK | os.X_OK)}
    if not reroute:
        return
    # Longest first, so lib/python3.11/lib-dynload wins over lib/python3.11.
    prefixes = sorted(reroute, key=len, reverse=True)

    def rerouted(path: str) -> str:
        for prefix in prefixes:
            if path == prefix or path.startswith(prefix + os.sep):
                return reroute[prefix] + path[len(prefix) :]
        return path

    # New path strings get new finders, so no import cache needs clearing.
    sys.path[:] = [rerouted(entry) for entry in sys.path]
    for package_path in _PACKAGE_PATHS:
        package_path[:] = [rerouted(entry) for entry in package_path]


def _send_message(sock: socket.socket, message: dict) -> None:
    body = json.dumps(message, ensure_ascii=False).encode("utf-8")
    sock.sendall(HEADER.pack(len(body)) + body)


def _recv_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)


def _recv_message(sock: socket.socket) -> dict | None:
    header = _recv_exactly(sock, HEADER.size)
    if header is None:
        return None
    (size,) = HEADER.unpack(header)
    if size > MAX_REQUEST_BYTES:
        return None
    body = _recv_exactly(sock, size)
    return None if body is None else json.loads(body)


def _kill_other_processes_of_uid() -> None:
    """Processes a cell started do not outlive it, so none keeps a CPU when no cell runs.

    With its own uid, the session is the only other process that kill(-1) can reach: it
    signals every process of the uid but the caller, detached ones included. Children are
    then reaped, since zombies still count against RLIMIT_NPROC (orphans are the template's).
    """
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        return
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


class _BoundedWriter(io.TextIOBase):
    """sys.stdout/sys.stderr of a session: keeps the first `limit` bytes of a cell, counts the rest.

    Bytes go straight to the output file, the same file as fd 1 and 2, so Python-level and
    subprocess output stay in order and the kit can still read them after killing the session.
    """

    def __init__(self, fd: int, limit: int):
        self._fd = fd
        self._limit = limit
        self.written = 0
        self.dropped = 0

    def reset(self) -> None:
        self.written = 0
        self.dropped = 0

    @property
    def encoding(self) -> str:
        return "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        room = self._limit - self.written
        # Slice before encoding, so a 10 MB string costs no 10 MB copy.
        head = text[: max(room, 0)]
        data = head.encode("utf-8", "replace")[: max(room, 0)]
        self.dropped += len(text) - len(head)
        while data:
            try:
                sent = os.write(self._fd, data)
            except OSError:  # the file hit RLIMIT_FSIZE, or the cell closed our descriptor
                self.dropped += len(data)
                break
            self.written += sent
            data = data[sent:]
        return len(text)


def _clean_traceback(error: BaseException, limit: int) -> str:
    """The traceback as the model should see it: only frames of the cells, no file paths."""
    frames = [frame for frame in traceback.extract_tb(error.__traceback__) if frame.filename == CELL_FILENAME]
    lines = []
    if frames:
        lines.append("Traceback (most recent call last):\n")
        lines.extend(traceback.StackSummary.from_list(frames).format())
    lines.extend(traceback.format_exception_only(type(error), error))
    text = "".join(lines)
    # Keep the end: the `ExcType: message` line matters most.
    return text[-limit:]


class _SessionProcess:
    """One persistent interpreter; lives in a freshly forked child of the template."""

    def __init__(self, sock: socket.socket, request: dict, config: dict, template_pid: int):
        self.sock = sock
        self.request = request
        self.config = config
        self.template_pid = template_pid
        self.pid = os.getpid()
        self.limit = config["capture_bytes"]
        self.namespace = {"__name__": "__main__", "__builtins__": builtins}

    def confine(self) -> None:
        """Everything that happens between fork and the first cell (runs as root when the kit is root)."""
        os.setsid()  # own process group: the kit can kill the session and its children at once
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the template ignores it; subprocess needs it
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversize write fails with EFBIG instead
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)

        # The session directory stays owned by the kit's user: the cell cannot swap the output
        # files, which the kit reads after a timeout or crash. The cell works in work/.
        session_dir = self.request["dir"]
        work_dir = os.path.join(session_dir, "work")
        os.mkdir(session_dir, 0o711)
        os.mkdir(work_dir, 0o700)
        create = os.O_CREAT | os.O_EXCL
        output_path = os.path.join(session_dir, "output")
        self.output_fd = os.open(output_path, os.O_WRONLY | os.O_APPEND | create, 0o600)
        self.output_reader = os.open(output_path, os.O_RDONLY)
        os.dup2(self.output_fd, 1)
        os.dup2(self.output_fd, 2)
        crash_fd = os.open(os.path.join(session_dir, "crash"), os.O_WRONLY | create, 0o600)
        # Names the fatal signal (SIGSEGV, ...) for the kit; the traceback it adds is not shown.
        faulthandler.enable(file=crash_fd, all_threads=False)

        uid = self.request["uid"]
        if uid is not None:
            os.chown(work_dir, uid, uid)
        nproc = self.config["max_processes"]
        if uid is None:
            # RLIMIT_NPROC counts every task of the real uid, here the kit's own user too.
            nproc += _tasks_of_uid(os.getuid())
        _set_limit(resource.RLIMIT_NPROC, nproc)
        _set_limit(resource.RLIMIT_AS, self.config["memory_mb"] << 20)
        _set_limit(resource.RLIMIT_FSIZE, self.config["file_size_mb"] << 20)
        _set_limit(resource.RLIMIT_CORE, 0)
        if uid is not None:
            import_dirs = _open_import_dirs()
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            _reroute_imports(import_dirs)
        # After setuid, which clears it. If the template is already gone, stop here.
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != self.template_pid:
            raise RuntimeError("the template exited while the session started")

        os.chdir(work_dir)
        os.environ["HOME"] = work_dir
        os.environ["TMPDIR"] = work_dir
        tempfile.tempdir = work_dir
        import numpy
        import sympy

        numpy.random.seed()  # forked sessions would otherwise share the template's random state
        self.namespace.update(math=math, np=numpy, numpy=numpy, sympy=sympy)
        self.writer = _BoundedWriter(self.output_fd, self.limit)

    def serve(self) -> None:
        try:
            self.confine()
        except Exception as error:
            _send_message(self.sock, {"setup_error": f"{type(error).__name__}: {error}"})
            return
        _send_message(self.sock, {"ready": True})
        while True:
            request = _recv_message(self.sock)
            if request is None:
                return
            _send_message(self.sock, self.run_cell(request["code"]))

    def run_cell(self, code: str) -> dict:
        os.ftruncate(self.output_fd, 0)
        self.writer.reset()
        sys.stdout = sys.stderr = self.writer
        sys.stdin = io.StringIO()  # input() raises EOFError at once
        error_name = None
        error_text = ""
        try:
            self._execute(code)
        except BaseException as error:  # SystemExit and KeyboardInterrupt are cell errors too
            if os.getpid() != self.pid:
                os._exit(1)
            error_name = type(error).__name__[:MAX_ERROR_NAME_CHARS]
            error_text = _clean_traceback(error, self.limit)
        # A process the cell forked must never answer the kit in the session's name.
        if os.getpid() != self.pid:
            os._exit(0)
        if self.request["uid"] is not None:
            _kill_other_processes_of_uid()
        output = self._captured_output()
        if error_text and output and not output.endswith("\n"):
            output += "\n"
        output += error_text
        # Lone surrogates (e.g. from an exception message) cannot be encoded as UTF-8.
        output = output.encode("utf-8", "replace").decode("utf-8")
        return {"output": output, "error": error_name}

    def _execute(self, code: str) -> None:
        linecache.cache[CELL_FILENAME] = (len(code), None, code.splitlines(True), CELL_FILENAME)
        tree = ast.parse(code, CELL_FILENAME, "exec")
        last_expression = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last_expression = ast.Expression(tree.body.pop().value)
        exec(compile(tree, CELL_FILENAME, "exec"), self.namespace)
        if last_expression is not None:
            value = eval(compile(last_expression, CELL_FILENAME, "eval"), self.namespace)
            if value is not None:
                self.writer.write(repr(value) + "\n")

    def _captured_output(self) -> str:
        size = os.fstat(self.output_reader).st_size
        data = os.pread(self.output_reader, self.limit, 0)
        text = data.decode("utf-8", "replace")
        dropped = size - len(data) + self.writer.dropped
        if dropped > 0:
            text += f"\n[output truncated: {dropped} more characters were not captured]\n"
        return text


def _spawn_session(control: socket.socket, request: dict, config: dict) -> None:
    kit_end, session_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    template_pid = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            control.close()  # a session must never be able to ask for sessions (as root)
            kit_end.close()
            _SessionProcess(session_end, request, config, template_pid).serve()
        finally:
            os._exit(0)
    session_end.close()
    try:
        pidfd = os.pidfd_open(pid)
    except OSError as error:
        control.send(json.dumps({"error": f"the session died at once: {error}"}).encode())
        kit_end.close()
        return
    try:
        socket.send_fds(control, [json.dumps({"pid": pid}).encode()], [kit_end.fileno(), pidfd])
    finally:
        kit_end.close()
        os.close(pidfd)


def _warm_up() -> None:
    """Pay imports and sympy's first-call costs once, here, instead of in every session."""
    import numpy
    import sympy

    for name in WARM_MODULES:
        importlib.import_module(name)
    x, n = sympy.symbols("x n")
    sympy.solve(x**2 - 5 * x + 7, x)
    sympy.simplify(sympy.sin(x) ** 2 + sympy.cos(x) ** 2)
    sympy.integrate(x**2, (x, 0, 1))
    sympy.summation(n**2, (n, 1, 10))
    sympy.lambdify(x, x**2)(3)
    sympy.Matrix([[1, 2], [3, 4]]).det()
    sympy.factorint(360)
    numpy.linalg.solve(numpy.eye(2), numpy.ones(2))
    # Packages whose __path__ _reroute_imports may rewrite; listed now so that sessions do not
    # walk (and copy-on-write) every loaded module.
    for module in list(sys.modules.values()):
        package_path = module.__dict__.get("__path__") if isinstance(module, types.ModuleType) else None
        if isinstance(package_path, list):
            _PACKAGE_PATHS.append(package_path)


def main() -> None:
    config = json.loads(sys.argv[1])
    control = socket.socket(fileno=config["control_fd"])
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != config["kit_pid"]:
        return  # the kit died before we could ask to die with it
    # Orphans of the sessions (processes the model detached) become our children and are
    # reaped at once thanks to SIG_IGN, so no zombie keeps counting against RLIMIT_NPROC.
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    _warm_up()
    # Keep the garbage collector of the sessions off the template's objects: it would copy
    # every page of them (copy-on-write) and spend time on them at each full collection.
    gc.freeze()
    control.send(json.dumps({"ready": True}).encode())
    while True:
        data = control.recv(65536)
        if not data:
            return
        sys.stdout.flush()
        sys.stderr.flush()
        _spawn_session(control, json.loads(data), config)


if __name__ == "__main__":
    main()
