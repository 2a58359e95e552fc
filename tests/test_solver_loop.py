"""The solver's event loop outlives a KeyboardInterrupt raised inside one of its tasks: the
caller of that task gets it, the loop logs it and serves the next problem."""

from __future__ import annotations

import logging

import pytest

from kit.config import KitConfig
from kit.solver import Solver
from scripted_engine import ScriptedEngine


def test_an_interrupt_inside_a_task_reaches_its_caller_and_the_loop_serves_on(caplog):
    async def interrupted():
        raise KeyboardInterrupt

    cfg = KitConfig(num_samples=2, max_code_rounds=0, early_stop=[])
    with Solver(cfg, engine=ScriptedEngine(lambda c, s: "\\boxed{3}")) as solver:
        with caplog.at_level(logging.WARNING, logger="kit.solver"), pytest.raises(KeyboardInterrupt):
            solver.run_coroutine(interrupted(), timeout_s=10)
        result = solver.solve("What is 1 + 2?", "p", time_limit_s=10)
    assert "the solver's loop stopped on KeyboardInterrupt()" in caplog.text
    assert result.answer == "3" and not result.used_fallback
