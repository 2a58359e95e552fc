"""Solver.solve never raises, also when close() runs from another thread while a problem is
in flight, or after close()."""

from __future__ import annotations

import logging
import threading
import time

from kit.config import KitConfig
from kit.solver import Solver
from scripted_engine import ScriptedEngine

CFG = KitConfig(num_samples=2, max_code_rounds=0, early_stop=[])


def test_close_while_a_problem_is_in_flight_answers_the_fallback(caplog):
    solver = Solver(CFG, engine=ScriptedEngine(lambda c, s: "\\boxed{3}", delay_s=60))
    closer = threading.Timer(0.5, solver.close)
    closer.start()
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="kit.solver"):
        result = solver.solve("What is 1 + 2?", "p", time_limit_s=30)
    closer.join()
    assert result.used_fallback and result.answer == "0"
    assert "closed while the problem was in flight" in caplog.text
    assert time.monotonic() - started < 10


def test_solve_after_close_answers_the_fallback():
    solver = Solver(CFG, engine=ScriptedEngine(lambda c, s: "\\boxed{3}"))
    solver.close()
    result = solver.solve("What is 1 + 2?", "p")
    assert result.used_fallback and "closed" in result.stop_reason
