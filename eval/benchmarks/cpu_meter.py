"""Where a run's CPU time went, by process group: this process (the kit's loop, vLLM's front end:
detokenizing, stop strings, logprobs objects), vLLM's engine processes (``EngineCore``, its
workers: the model itself) and the rest of this process's descendants (the sandbox template
and its sessions: the model's code). On a CPU-only machine all three share the same cores, so
CPU the kit spends outside the engine is time the engine does not get.

A process that ends during a run is counted through its parent's ``children_*`` times once the
parent has reaped it (a session forked and closed within the run is counted as the sandbox's).
"""

from __future__ import annotations

import dataclasses
import os

import psutil

ENGINE_MARKERS = ("EngineCore", "VLLM::Worker", "VllmWorker")


@dataclasses.dataclass(frozen=True)
class CpuTimes:
    """CPU seconds (user + system) of each group at one moment."""

    kit: float = 0.0
    engine: float = 0.0
    sandbox: float = 0.0

    def __sub__(self, other: CpuTimes) -> CpuTimes:
        return CpuTimes(self.kit - other.kit, self.engine - other.engine, self.sandbox - other.sandbox)

    def __add__(self, other: CpuTimes) -> CpuTimes:
        return CpuTimes(self.kit + other.kit, self.engine + other.engine, self.sandbox + other.sandbox)

    def report(self) -> dict:
        return {"kit_process_cpu_s": round(self.kit, 2), "engine_cpu_s": round(self.engine, 2),
                "sandbox_cpu_s": round(self.sandbox, 2)}


def is_engine_process(process: psutil.Process) -> bool:
    """vLLM's engine core and workers, by the titles vLLM gives them."""
    title = " ".join([process.name(), *process.cmdline()])
    return any(marker in title for marker in ENGINE_MARKERS)


def cpu_times(root_pid: int | None = None) -> CpuTimes:
    """The CPU seconds used so far by the process ``root_pid`` (default: this one) and its
    descendants, grouped (module docstring). Processes that end while being read are skipped."""
    root = psutil.Process(root_pid or os.getpid())
    own = root.cpu_times()
    kit = own.user + own.system
    sandbox = own.children_user + own.children_system  # reaped children: sessions, mostly
    engine = 0.0
    for child in root.children(recursive=True):
        try:
            t = child.cpu_times()
            used, reaped = t.user + t.system, t.children_user + t.children_system
            if is_engine_process(child):
                engine += used + reaped
            else:
                sandbox += used + reaped
        except psutil.NoSuchProcess:
            continue
    return CpuTimes(kit, engine, sandbox)
