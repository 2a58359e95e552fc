"""The grader's worker process (``python -m eval.grading.worker CONFIG_JSON``, started by
eval.grading.grader.Grader): imports math-verify once, caps its own address space, then answers one
``{"gold", "pred"}`` line at a time on stdin with ``{"status": ...}`` on stdout. The parent
enforces the wall-clock limit by killing it; eval/grading/grader.py says what is guaranteed."""

from __future__ import annotations

import json
import os
import sys
import threading
import time

from eval.grading.grader import NEAR_CAP, normalize_answer

ORPHAN_POLL_S = 0.5
PR_SET_PDEATHSIG = 1


def _for_parse(answer: str) -> str:
    """The content of a \\boxed{} as math-verify's parse wants it: wrapped in \\boxed{} again."""
    answer = normalize_answer(answer)
    return answer if answer.startswith("\\boxed{") and answer.endswith("}") else "\\boxed{" + answer + "}"


def _verify_pair(gold: str, pred: str) -> bool:
    from math_verify import parse, verify

    def run(strict_errors: bool) -> bool:
        gold_parsed = parse(_for_parse(gold), parsing_timeout=None, raise_on_error=strict_errors)
        pred_parsed = parse(_for_parse(pred), parsing_timeout=None, raise_on_error=strict_errors)
        return verify(gold_parsed, pred_parsed, timeout_seconds=None, raise_on_error=strict_errors)

    # math-verify turns every exception, MemoryError included, into "no match". Run it with
    # raise_on_error so that a MemoryError reaches us; on any other exception, redo it with
    # math-verify's ordinary (forgiving) behaviour, so that verdicts are exactly math-verify's.
    try:
        return run(strict_errors=True)
    except MemoryError:
        raise
    except Exception:  # noqa: BLE001 - any other failure: math-verify's own forgiving handling
        return run(strict_errors=False)


def _peak_address_space_kb() -> int:
    """VmPeak: the largest address space this process has had, the quantity RLIMIT_AS caps."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmPeak:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):  # no /proc or no VmPeak: never recycle on memory
        pass
    return 0


def _orphan_watchdog(parent_pid: int) -> None:
    while True:
        if os.getppid() != parent_pid:
            os._exit(0)
        time.sleep(ORPHAN_POLL_S)


def _die_with_parent(parent_pid: int) -> None:
    """SIGKILL from the kernel when the parent dies, even in a C-level computation that holds the
    GIL; where prctl is unavailable, a thread that polls getppid (which needs the GIL)."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl")
    except (OSError, AttributeError):
        threading.Thread(target=_orphan_watchdog, args=(parent_pid,), daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before prctl
        os._exit(0)


def _worker_main(config: dict) -> None:
    import logging
    import resource
    import warnings

    # Protocol on a private copy of stdout; stray prints go to stderr.
    channel = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    _die_with_parent(config["parent_pid"])
    logging.disable(logging.CRITICAL)  # math-verify warns that its timeouts are off, per process
    warnings.simplefilter("ignore")

    def send(message: dict) -> None:
        channel.write(json.dumps(message).encode() + b"\n")

    try:
        import math_verify  # noqa: F401

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = config["memory_mb"] << 20
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        _verify_pair("\\frac{1}{2}", "0.5")  # warm-up: lazy imports, regex compilation
    except BaseException as error:  # noqa: BLE001 - reported to the parent, which raises
        send({"ready": False, "error": f"{type(error).__name__}: {error}"})
        return
    send({"ready": True, "pid": os.getpid()})

    near_cap_kb = int(NEAR_CAP * limit) >> 10
    for line in sys.stdin.buffer:
        try:
            request = json.loads(line)
            correct = _verify_pair(str(request["gold"]), str(request["pred"]))
            reply = {"status": "correct" if correct else "wrong"}
            if _peak_address_space_kb() >= near_cap_kb:
                # The cap was (nearly) reached: a MemoryError was probably raised and swallowed by
                # math-verify or sympy ("no match"). Don't trust a negative verdict; start afresh.
                reply = {"status": "correct" if correct else "error", "detail": "near memory cap", "recycle": True}
        except MemoryError:
            reply = {"status": "error", "detail": "MemoryError", "recycle": True}
        except RecursionError:
            reply = {"status": "error", "detail": "RecursionError", "recycle": True}
        except Exception as error:  # noqa: BLE001
            reply = {"status": "error", "detail": f"{type(error).__name__}"}
        try:
            send(reply)
        except MemoryError:
            os._exit(3)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m eval.grading.worker CONFIG_JSON (started by eval.grading.grader.Grader)")
    _worker_main(json.loads(sys.argv[1]))
