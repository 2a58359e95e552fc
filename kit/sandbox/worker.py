"""Code that runs inside the sandbox of kit.sandbox.pool: the template process and its sessions.

Started by the kit as ``python -m kit.sandbox.worker CONFIG_JSON``. The process imports numpy,
sympy and math once, warms sympy up, and becomes the *template*: it waits on a SOCK_SEQPACKET
control socket for spawn requests ``{"uid": int | null, "dir": str}`` and answers each with
``{"pid": int}`` plus two file descriptors passed by SCM_RIGHTS: the kit's end of the new
session's stream socket and a pidfd of the session process. The template exits when the kit
closes the control socket, and is SIGKILLed by the kernel when the kit dies.

A session is an os.fork() of the template, so it starts in milliseconds with everything already
imported. Its ``_SessionServer`` confines it (see ``_SessionServer.confine``), then serves cells over its stream
socket: each message is a 4-byte big-endian length followed by UTF-8 JSON; requests are
``{"code": str}``, replies ``{"output": str, "error": str | null}``. The first message a session
sends is ``{"ready": true}`` or ``{"setup_error": str}``. With a uid of its own, a session kills
every other process of that uid after each cell: what a cell starts does not outlive it.

The template's own ready message says whether sessions get an empty network namespace and a
private /tmp (``{"ready": true, "network": str, "tmp": str}``): it tries both once, at start, in
a throwaway child (see ``_probe_isolation``). They need root with CAP_SYS_ADMIN; a container
may forbid them, and then sessions run without, as the message says.

A cell runs in the session's own interpreter, so it can damage what the session server itself uses
to answer: builtins, sys.modules, sys.stdout, os.write, json. Between cells the server calls only
C functions it captured at import; after every cell it puts back builtins, sys, sys.modules
entries and the traceback machinery as they were when the session started (``_InterpreterGuard``),
and gives the next cell fresh stdout/stderr objects and file descriptors 0-2. What it cannot put
back (its own descriptors closed or replaced) ends the session, which the kit reports as a crash.
The cells' namespace is sys.modules["__main__"], so this module is not reachable by that name.

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
CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
PY_TPFLAGS_IMMUTABLETYPE = 1 << 8
DAMAGED_EXIT_CODE = 70
NETWORK_ISOLATED = "isolated (empty network namespace)"
TMP_PRIVATE = "private (the session's own directory)"
HEADER = struct.Struct("!I")
MAX_REQUEST_BYTES = 64 << 20
CELL_FILENAME = "<cell>"
MAX_ERROR_NAME_CHARS = 100
# Imported by the template so that sessions get them for free (numpy loads submodules lazily).
WARM_MODULES = (
    "numpy.random", "numpy.fft", "numpy.polynomial", "numpy.linalg", "itertools", "functools", "fractions",
    "decimal", "collections", "random", "re", "heapq", "bisect", "statistics", "secrets", "string", "cmath",
)
# Restored after every cell (see _InterpreterGuard): modules whose attributes the session server
# looks up by name after a cell (the traceback formatting), and entries of sys.modules.
GUARDED_MODULES = ("builtins", "sys", "traceback", "linecache")
GUARDED_IMPORTS = (*GUARDED_MODULES, "__main__", "os", "io", "json", "ast", "unicodedata", "math", "numpy", "sympy")
_PACKAGE_PATHS: list[list[str]] = []
_LIBC = ctypes.CDLL(None, use_errno=True)
# Everything else a session does between cells goes through these, taken at import: a cell can
# rebind os.write or json.dumps, or patch socket.socket, but not change what these names hold
# (C functions and C types, which no cell can modify).
_write, _read, _pread, _fstat, _ftruncate, _dup2 = os.write, os.read, os.pread, os.fstat, os.ftruncate, os.dup2
_getpid, _exit, _kill, _waitpid, _SIGKILL = os.getpid, os._exit, os.kill, os.waitpid, signal.SIGKILL
_json_string = json.encoder.c_encode_basestring
_scan_json = json.scanner.c_make_scanner(json.JSONDecoder())
_StringIO = io.StringIO
_AST_ONLY, _Expr, _Expression = ast.PyCF_ONLY_AST, ast.Expr, ast.Expression


def _check_libc(result: int, call: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{call} failed: {os.strerror(errno)}")


def _prctl(option: int, value: int) -> None:
    _check_libc(_LIBC.prctl(option, value, 0, 0, 0), f"prctl({option})")


def _mount(source: str, target: str, flags: int) -> None:
    _check_libc(_LIBC.mount(source.encode(), target.encode(), None, flags, None), f"mount({source}, {target})")


def _unshare(flag: int, name: str) -> None:
    _check_libc(_LIBC.unshare(flag), f"unshare({name})")


def _private_mounts() -> None:
    """A mount namespace of our own, from which no mount propagates back to the kit's."""
    _unshare(CLONE_NEWNS, "CLONE_NEWNS")
    _mount("none", "/", MS_REC | MS_PRIVATE)


def _make_private_tmp(session_dir: str, uid: int) -> None:
    """Gives the session its own /tmp: the directory tmp/ of the session, bind-mounted on /tmp.

    The session directory usually lives under /tmp itself; it is bound back at its own path
    inside the new /tmp, so the working directory keeps its name (os.getcwd(), absolute paths).
    """
    tmp = os.path.join(session_dir, "tmp")
    os.mkdir(tmp, 0o700)
    inside = os.path.relpath(session_dir, "/tmp")
    if not inside.startswith(os.pardir):
        os.makedirs(os.path.join(tmp, inside), 0o755)
    os.chown(tmp, uid, uid)
    _private_mounts()
    # Opened in the new namespace: a bind mount's source must be a mount of the caller's own.
    handle = os.open(session_dir, os.O_PATH | os.O_DIRECTORY)
    _mount(tmp, "/tmp", MS_BIND)
    if not inside.startswith(os.pardir):
        _mount(f"/proc/self/fd/{handle}", os.path.join("/tmp", inside), MS_BIND)
    os.close(handle)


def _outcome(attempt, success: str, failure: str) -> str:
    try:
        attempt()
    except OSError as error:
        return f"{failure}: {error}"
    return success


def _isolate_probe_child() -> list[str]:
    network = _outcome(lambda: _unshare(CLONE_NEWNET, "CLONE_NEWNET"), NETWORK_ISOLATED, "not isolated")
    tmp = _outcome(lambda: (_private_mounts(), _mount("/tmp", "/tmp", MS_BIND)), TMP_PRIVATE, "shared")
    return [network, tmp]


def _probe_isolation() -> tuple[str, str]:
    """What sessions can get (network, /tmp), tried once in a throwaway child: never here."""
    if os.geteuid() != 0:
        return "not isolated: the kit does not run as root", "shared: the kit does not run as root"
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write_end, json.dumps(_isolate_probe_child()).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        data = reader.read()
    os.waitpid(pid, 0)
    if not data:
        return "not isolated: the probe died", "shared: the probe died"
    network, tmp = json.loads(data)
    return network, tmp


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
        except OSError:  # the process exited since listdir: it no longer counts
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


def _send_reply(fd: int, output: str, error: str | None) -> None:
    """A cell's reply, JSON built from captured C functions only (the strings are valid UTF-8)."""
    error_json = "null" if error is None else _json_string(error)
    body = f'{{"output": {_json_string(output)}, "error": {error_json}}}'.encode("utf-8")
    view = memoryview(HEADER.pack(len(body)) + body)
    while view:
        view = view[_write(fd, view) :]


def _recv_exactly(fd: int, size: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = _read(fd, size - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)


def _recv_request(fd: int) -> dict | None:
    header = _recv_exactly(fd, HEADER.size)
    if header is None:
        return None
    (size,) = HEADER.unpack(header)
    if size > MAX_REQUEST_BYTES:
        return None
    body = _recv_exactly(fd, size)
    return None if body is None else _scan_json(body.decode("utf-8"), 0)[0]


def _kill_other_processes_of_uid() -> None:
    """Processes a cell started do not outlive it, so none keeps a CPU when no cell runs.

    With its own uid, the session is the only other process that kill(-1) can reach: it
    signals every process of the uid but the caller, detached ones included. Children are
    then reaped, since zombies still count against RLIMIT_NPROC (orphans are the template's).
    """
    try:
        _kill(-1, _SIGKILL)
    except ProcessLookupError:  # no other process of the uid: the cell started none, or all ended
        return
    while True:
        try:
            _waitpid(-1, 0)
        except ChildProcessError:  # every child reaped
            return


class _CapturedStream:
    """What the capture's text and binary streams share: writable, no terminal, fd 1 (the
    output file, where subprocess output goes too)."""

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return 1


class _BoundedBuffer(_CapturedStream, io.BufferedIOBase):
    """sys.stdout.buffer (and sys.stderr.buffer) of one cell: keeps the first `limit` bytes that
    the cell writes, as text or bytes, and counts the rest.

    Bytes go straight to the output file, the same file as fd 1 and 2, so Python-level and
    subprocess output stay in order and the kit can still read them after killing the session.
    """

    def __init__(self, fd: int, limit: int):
        self._fd = fd
        self._limit = limit
        self.written = 0
        self.dropped = 0

    def write(self, data) -> int:
        view = memoryview(data).cast("B")  # no copy: a 100 MB bytes object costs nothing extra
        room = max(self._limit - self.written, 0)
        self.dropped += max(len(view) - room, 0)
        chunk = view[:room]
        while chunk:
            try:
                sent = _write(self._fd, chunk)
            except OSError:  # the file hit RLIMIT_FSIZE, or the cell closed our descriptor
                self.dropped += len(chunk)
                break
            self.written += sent
            chunk = chunk[sent:]
        return len(view)


class _BoundedWriter(_CapturedStream, io.TextIOBase):
    """sys.stdout/sys.stderr of one cell: UTF-8 text into the cell's _BoundedBuffer."""

    def __init__(self, buffer: _BoundedBuffer):
        self._buffer = buffer

    @property
    def buffer(self) -> _BoundedBuffer:
        return self._buffer

    @property
    def encoding(self) -> str:
        return "utf-8"

    @property
    def errors(self) -> str:
        return "replace"

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        room = max(self._buffer._limit - self._buffer.written, 0)
        # Slice before encoding, so a 10 MB string costs no 10 MB copy.
        head = text[:room]
        self._buffer.dropped += len(text) - len(head)
        self._buffer.write(head.encode("utf-8", "replace"))
        return len(text)


class _InterpreterGuard:
    """What the session server relies on, as it was when the session started, put back after each cell.

    That is: the entries of builtins and of sys (stdout, modules, displayhook...); the
    attributes of traceback and linecache (the traceback formatting) and of their mutable
    classes, and of the capture's classes; and the entries of sys.modules for GUARDED_IMPORTS.
    A value is restored if the cell rebound or deleted it; what the cell added to a module or
    to sys.modules stays (its own imports), what it added to a guarded class goes. Objects
    are restored by identity: their inner state (a list's items) is the cell's to keep.

    Not more: every value held here costs each session a copy-on-write page fault when it is
    first touched (all of sys.modules and the modules of this file took 11-19 ms per session
    open); the rest of the server calls only captured C functions, and a module deleted from
    sys.modules is imported again (loudly wrong if at all).
    """

    def __init__(self, module_names: tuple[str, ...], imports: tuple[str, ...], classes: list[type]):
        modules = [sys.modules[name] for name in module_names]
        self.dicts = [(vars(module), dict(vars(module))) for module in modules]
        self.dicts.append((sys.modules, {name: sys.modules[name] for name in imports}))
        for module in modules:
            classes += [value for value in vars(module).values() if isinstance(value, type)
                        and value.__module__ == module.__name__ and not value.__flags__ & PY_TPFLAGS_IMMUTABLETYPE]
        self.classes = [(cls, dict(vars(cls))) for cls in classes]

    def restore(self) -> None:
        # Dict methods first: they need no name that the cell could have rebound (builtins first).
        for current, saved in self.dicts:
            current.update(saved)
        for cls, saved in self.classes:
            current = vars(cls)
            for name in current.keys() - saved.keys():
                type.__delattr__(cls, name)
            for name, value in saved.items():
                if current.get(name) is not value:
                    type.__setattr__(cls, name, value)
        # A trace or profile function would run on every line of the session server.
        sys.settrace(None)
        sys.setprofile(None)


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


class _SessionServer:
    """The code of a session process (a freshly forked child of the template): confines it, then
    serves its cells, one persistent interpreter."""

    def __init__(self, sock: socket.socket, request: dict, config: dict, template_pid: int):
        self.sock = sock
        self.request = request
        self.config = config
        self.template_pid = template_pid
        self.fd = sock.fileno()
        self.pid = os.getpid()
        self.limit = config["capture_bytes"]
        # The cells' namespace is sys.modules["__main__"] (pickle, multiprocessing and dataclasses
        # look there), which also keeps this module out of the cells' reach by that name.
        self.main_module = types.ModuleType("__main__")
        self.namespace = vars(self.main_module)
        self.namespace["__builtins__"] = builtins

    def confine(self) -> None:
        """Everything that happens between fork and the first cell (runs as root when the kit is root)."""
        os.setsid()  # own process group: the kit can kill the session and its children at once
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the template ignores it; subprocess needs it
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversize write fails with EFBIG instead
        self.stdin_fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(self.stdin_fd, 0)

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
            import_dirs = _open_import_dirs()  # before /tmp is replaced: Python may live below it
            if self.config["network"] == NETWORK_ISOLATED:
                _unshare(CLONE_NEWNET, "CLONE_NEWNET")  # only a down loopback: no route anywhere
            if self.config["tmp"] == TMP_PRIVATE:
                _make_private_tmp(session_dir, uid)
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
        sys.modules["__main__"] = self.main_module
        self.buffer = _BoundedBuffer(self.output_fd, self.limit)
        self.fd_identities = self._fd_identities()
        self.guard = _InterpreterGuard(GUARDED_MODULES, GUARDED_IMPORTS, [_CapturedStream, _BoundedBuffer, _BoundedWriter])

    def _fd_identities(self) -> list[tuple[int, int]]:
        return [(info.st_dev, info.st_ino) for info in map(_fstat, (self.stdin_fd, self.output_fd, self.output_reader))]

    def after_cell(self) -> None:
        """Put back what the cell may have damaged; die (a crash, for the kit) where it cannot be."""
        try:
            self.guard.restore()
            self.namespace["__builtins__"] = builtins
            _dup2(self.stdin_fd, 0)
            _dup2(self.output_fd, 1)
            _dup2(self.output_fd, 2)
            if self._fd_identities() != self.fd_identities:
                raise RuntimeError("the cell replaced the session's own file descriptors")
        except BaseException as error:
            # Written to the output, which the kit shows with the crash; then replaced by the kit.
            try:
                _write(2, f"\nthe cell damaged the interpreter beyond repair ({type(error).__name__}: {error})\n".encode())
            finally:
                _exit(DAMAGED_EXIT_CODE)

    def serve(self) -> None:
        try:
            self.confine()
        except Exception as error:
            _send_message(self.sock, {"setup_error": f"{type(error).__name__}: {error}"})
            return
        _send_message(self.sock, {"ready": True})
        while True:
            request = _recv_request(self.fd)
            if request is None:
                return
            _send_reply(self.fd, *self.run_cell(request["code"]))

    def run_cell(self, code: str) -> tuple[str, str | None]:
        _ftruncate(self.output_fd, 0)
        # New objects for every cell: what a cell did to the last ones (closed them, set
        # attributes on them) stays with it. __stdout__ too, so `sys.stdout = sys.__stdout__` works.
        self.buffer = _BoundedBuffer(self.output_fd, self.limit)
        writer = _BoundedWriter(self.buffer)
        sys.stdout = sys.stderr = sys.__stdout__ = sys.__stderr__ = writer
        sys.stdin = _StringIO()  # input() raises EOFError at once
        error_name = None
        error_text = ""
        try:
            self._execute(code, writer)
        except BaseException as error:  # SystemExit and KeyboardInterrupt are cell errors too
            if _getpid() != self.pid:
                _exit(1)
            error_name = type(error).__name__[:MAX_ERROR_NAME_CHARS]
            error_text = _clean_traceback(error, self.limit)
            self.after_cell()  # again: formatting ran the exception's own code (__str__)
        # A process the cell forked must never answer the kit in the session's name.
        if _getpid() != self.pid:
            _exit(0)
        if self.request["uid"] is not None:
            _kill_other_processes_of_uid()
        output = self._captured_output()
        if error_text and output and not output.endswith("\n"):
            output += "\n"
        output += error_text
        # Lone surrogates (e.g. from an exception message or class name) cannot be encoded as UTF-8.
        output = output.encode("utf-8", "replace").decode("utf-8")
        if error_name is not None:
            error_name = error_name.encode("utf-8", "replace").decode("utf-8")
        return output, error_name

    def _execute(self, code: str, writer: _BoundedWriter) -> None:
        """Runs the cell, then after_cell(); everything run after exec was bound before it."""
        try:
            linecache.cache[CELL_FILENAME] = (len(code), None, code.splitlines(True), CELL_FILENAME)
            tree = compile(code, CELL_FILENAME, "exec", _AST_ONLY)
            last_expression = None
            if tree.body and isinstance(tree.body[-1], _Expr):
                last_expression = compile(_Expression(tree.body.pop().value), CELL_FILENAME, "eval")
            body = compile(tree, CELL_FILENAME, "exec")
            evaluate, show = eval, repr
            exec(body, self.namespace)
            if last_expression is not None:
                value = evaluate(last_expression, self.namespace)
                if value is not None:
                    writer.write(show(value) + "\n")
        finally:
            self.after_cell()

    def _captured_output(self) -> str:
        size = _fstat(self.output_reader).st_size
        data = _pread(self.output_reader, self.limit, 0)
        text = data.decode("utf-8", "replace")
        dropped = size - len(data) + self.buffer.dropped
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
            _SessionServer(session_end, request, config, template_pid).serve()
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
    config["network"], config["tmp"] = _probe_isolation()  # before SIG_IGN: it waits for its child
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    _warm_up()
    # Keep the garbage collector of the sessions off the template's objects: it would copy
    # every page of them (copy-on-write) and spend time on them at each full collection.
    gc.freeze()
    control.send(json.dumps({"ready": True, "network": config["network"], "tmp": config["tmp"]}).encode())
    while True:
        data = control.recv(65536)
        if not data:
            return
        sys.stdout.flush()
        sys.stderr.flush()
        _spawn_session(control, json.loads(data), config)


if __name__ == "__main__":
    main()
