"""The throughput benchmark's measurement code: the early-stop replay and the idle meter on
scripted data, then the whole benchmark once on the real engine with tiny settings (its
figures are printed by `make bench`, never asserted here)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from eval.benchmarks.throughput import MeteredEngine, replay_early_stop, run_kit
from eval.splits import EvalProblem
from kit.config import KitConfig
from kit.engine import GenerationStep
from kit.solver import Solver
from kit.sctir import Candidate, ProblemResult
from kit.voting import Vote, majority_vote
from scripted_engine import ScriptedEngine, code_step

REPO = Path(__file__).resolve().parent.parent


def result(answers: list[str | None], finish_s: list[float], tokens: int = 100) -> ProblemResult:
    candidates = [Candidate(i, generated_tokens=tokens, finished_at_s=t,
                            status="answered" if a else "pruned", answer=a)
                  for i, (a, t) in enumerate(zip(answers, finish_s))]
    vote = majority_vote([Vote(c.index, c.answer) for c in candidates if c.answer])
    return ProblemResult("p", vote.answer or "0", vote, candidates, max(finish_s), 60.0, "all_finished", False)


def test_replay_counts_tokens_and_time_up_to_the_stop():
    replay = replay_early_stop([result(["5", "5", "7", "7"], [1.0, 2.0, 3.0, 4.0])], ["2/2"])
    # Stops at 2 s: two finished (200 tokens), the others 2/3 and 2/4 of the way (66.7 + 50).
    assert replay["fired"] == 1
    assert replay["tokens_saved"] == pytest.approx(1 - (200 + 200 / 3 + 50) / 400)
    assert replay["time_saved"] == pytest.approx(0.5)


def test_replay_of_decided_never_changes_the_answer():
    results = [result(["5", "5", "5", "7", None, "7"], [1, 2, 3, 4, 5, 6]),
               result(["3", "4", "4", "4", "3", "3"], [1, 2, 3, 4, 5, 6])]
    assert replay_early_stop(results, ["decided"])["same_answer"] == 1.0


def test_replay_reports_an_early_answer_that_differs_from_the_full_vote():
    replay = replay_early_stop([result(["5", "5", "7", "7", "7"], [1, 2, 3, 4, 5])], ["2/2"])
    assert replay["same_answer"] == 0.0


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TickingEngine:
    """Each request yields to the loop once (so that requests started together overlap), then
    takes ``step_s`` on the fake clock and ends."""

    def __init__(self, clock: FakeClock, step_s: float):
        self.clock, self.step_s = clock, step_s

    async def generate(self, token_ids, max_tokens, request_id):
        await asyncio.sleep(0)
        self.clock.now += self.step_s
        return GenerationStep([ord("x")], "x", "stop", None)


def test_the_meter_counts_time_with_no_request_in_flight():
    clock = FakeClock()
    metered = MeteredEngine(TickingEngine(clock, step_s=1.0), clock=clock)

    async def two_requests_apart():
        clock.now = 10.0  # time before start() is not counted
        metered.start()
        clock.now += 0.25
        await metered.generate([1], 5, "p-0-0")
        clock.now += 2.0
        await metered.generate([1], 5, "p-0-1")
        clock.now += 0.5
        return metered.stop()

    assert asyncio.run(two_requests_apart()) == 0.25 + 2.0 + 0.5
    assert metered.request_s == 2.0


@pytest.mark.engine
def test_the_benchmark_runs_end_to_end_on_the_real_engine(tmp_path):
    out = tmp_path / "throughput.json"
    cmd = [sys.executable, "-m", "eval.benchmarks.throughput", "--config", "cpu-smol", "--problems", "1",
           "--rounds", "1", "--num-samples", "2", "--max-code-rounds", "1", "--max-new-tokens", "24",
           "--json", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["kit_overhead"]["tokens"] > 0 and report["kit_overhead"]["ratio"] > 0
    assert set(report["async_vs_lockstep"]) >= {"async", "lockstep", "speedup_wall"}
    assert "aimo2" in report["early_stop"]
    assert "| kit overhead" in out.with_suffix(".md").read_text()


def test_the_meter_integrates_requests_in_flight():
    # Both start at 0; the first ends at 1 (two in flight until then), the second at 2 (one).
    clock = FakeClock()
    metered = MeteredEngine(TickingEngine(clock, step_s=1.0), clock=clock)

    async def two_at_once():
        metered.start()
        await asyncio.gather(metered.generate([1], 5, "p-0-0"), metered.generate([1], 5, "p-1-0"))
        return metered.stop()

    assert asyncio.run(two_at_once()) == 0.0
    assert metered.request_s == 2 * 1.0 + 1 * 1.0


def test_a_kit_run_takes_its_mode_through_the_meter_and_leaves_the_solver_as_it_was():
    # Candidate 0 is slow in round 0: in lockstep nobody finishes before it is done (in async
    # the others finish at once).
    steps = [code_step("print(1)"), "\\boxed{1}"]
    engine = ScriptedEngine(lambda c, s: steps[s], delay_s=lambda c, s: 1.5 if (c, s) == (0, 0) else 0.0)
    cfg = KitConfig(num_samples=3, max_code_rounds=1, early_stop=[], mode="async")
    with Solver(cfg, engine=ScriptedEngine(lambda c, s: "x")) as solver:
        metered = MeteredEngine(engine)
        run = run_kit(solver, metered, [EvalProblem("p", "x", "1")], "lockstep", "lockstep")
        assert solver.cfg is cfg
    assert min(c.finished_at_s for c in run.results[0].candidates) >= 1.5
    assert run.results[0].answer == "1" and run.tokens == sum(c.generated_tokens for c in run.results[0].candidates)
    assert run.request_s > 0
