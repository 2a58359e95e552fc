"""The throughput benchmark's measurement code: the early-stop replay, the engine and sandbox
meters and the pass order on scripted data, then the whole benchmark once on the real engine with
tiny settings (its figures are printed by `make bench`, never asserted here beyond what must
hold: the same tokens with and without logprobs, and the N candidates sharing their prompt in
the prefix cache). The prefix-cache counter, CPU meter and summary: test_benchmark_meters.py."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from eval.benchmarks.meters import MeteredEngine, MeteredPool
from eval.benchmarks.throughput import decode_step_ratio, pass_order, raw_settings, replay_early_stop, run_kit
from eval.splits import EvalProblem
from kit.config import KitConfig, VoteConfig
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
    replay = replay_early_stop([result(["5", "5", "7", "7"], [1.0, 2.0, 3.0, 4.0])], ["2/2"], VoteConfig())
    # Stops at 2 s: two finished (200 tokens), the others 2/3 and 2/4 of the way (66.7 + 50).
    assert replay["fired"] == 1
    assert replay["tokens_saved"] == pytest.approx(1 - (200 + 200 / 3 + 50) / 400)
    assert replay["time_saved"] == pytest.approx(0.5)


def test_replay_of_decided_never_changes_the_answer():
    results = [result(["5", "5", "5", "7", None, "7"], [1, 2, 3, 4, 5, 6]),
               result(["3", "4", "4", "4", "3", "3"], [1, 2, 3, 4, 5, 6])]
    assert replay_early_stop(results, ["decided"], VoteConfig())["same_answer"] == 1.0


def test_replay_reports_an_early_answer_that_differs_from_the_full_vote():
    replay = replay_early_stop([result(["5", "5", "7", "7", "7"], [1, 2, 3, 4, 5])], ["2/2"], VoteConfig())
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
    logprobs = report["logprobs_cost"]
    assert logprobs["on"]["tokens"] == logprobs["off"]["tokens"] == report["kit_overhead"]["tokens"]
    # Both candidates start from the same prompt (over one 128-token CPU block): the second finds
    # at least that block in the cache, counted by vLLM's scheduler.
    cache = report["async_vs_lockstep"]["async"]["prefix_cache"]
    assert cache["started_cold"] and cache["requests"] >= 2 and 0 < cache["hit_tokens"] < cache["queried_tokens"]
    assert report["kit_overhead"]["kit_cpu"]["engine_cpu_s"] > 0
    # vLLM timed each engine step for the counters: one token per request per step, the two
    # requests side by side, so at least as many steps as the longer one's tokens.
    raw_steps = report["raw_engine"]["0"]["engine_steps"]
    assert raw_steps["prefill_steps"] >= 1 and raw_steps["decode_s"] > 0
    assert raw_steps["prefill_steps"] + raw_steps["decode_steps"] >= report["kit_overhead"]["tokens"] / 2
    text = out.with_suffix(".md").read_text()
    assert "| kit overhead" in text and "| top-5 logprobs" in text and "prefix-cache hit rate" in text


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


def test_a_kit_run_takes_its_mode_through_the_meters_and_leaves_the_solver_as_it_was():
    # Candidate 0 is slow in round 0: in lockstep nobody finishes before it is done (in async
    # the others finish at once).
    steps = [code_step("print(1)"), "\\boxed{1}"]
    engine = ScriptedEngine(lambda c, s: steps[s], delay_s=lambda c, s: 1.5 if (c, s) == (0, 0) else 0.0)
    cfg = KitConfig(num_samples=3, max_code_rounds=1, early_stop=[], mode="async")
    with Solver(cfg, engine=ScriptedEngine(lambda c, s: "x")) as solver:
        metered, pool = MeteredEngine(engine), MeteredPool(solver.pool)
        run = run_kit(solver, metered, pool, [EvalProblem("p", "x", "1")], "lockstep")
        assert solver.cfg is cfg
    assert min(c.finished_at_s for c in run.results[0].candidates) >= 1.5
    assert run.results[0].answer == "1" and run.tokens == sum(c.generated_tokens for c in run.results[0].candidates)
    assert run.request_s > 0
    # Each candidate ran its cell in a session of its own, and tokenized the cell's reply.
    assert run.sandbox.sessions == 3 and run.sandbox.open_s > 0 and run.sandbox.run_s > 0 and run.sandbox.close_s > 0
    assert run.encode_s > 0


class CountingClockEngine:
    """Encoding takes 0.5 s on the fake clock."""

    def __init__(self, clock: FakeClock):
        self.clock = clock

    def encode(self, text: str) -> list[int]:
        self.clock.now += 0.5
        return [1] * len(text)


def test_the_meter_times_encoding_from_its_start():
    clock = FakeClock()
    metered = MeteredEngine(CountingClockEngine(clock), clock=clock)
    metered.encode("ab")
    metered.start()  # what came before is not counted
    assert metered.encode("abc") == [1, 1, 1]
    metered.encode("d")
    assert metered.encode_s == 1.0


class TimedSession:
    def __init__(self, clock: FakeClock, log: list[str]):
        self.clock, self.log = clock, log

    async def run(self, code: str, timeout_s: float | None = None):
        self.clock.now += 2.0
        self.log.append(f"run {code} {timeout_s}")
        return "result"

    async def close(self) -> None:
        self.clock.now += 0.25
        self.log.append("close")


class TimedPool:
    def __init__(self, clock: FakeClock):
        self.clock, self.log = clock, []

    async def open_session(self):
        self.clock.now += 1.0
        return TimedSession(self.clock, self.log)


def test_the_pool_meter_times_opening_running_and_closing_sessions():
    clock = FakeClock()
    inner = TimedPool(clock)
    pool = MeteredPool(inner, clock=clock)

    async def two_sessions():
        first, second = await pool.open_session(), await pool.open_session()
        assert await first.run("a", timeout_s=3.0) == "result"
        await second.run("b")
        await first.close()

    asyncio.run(two_sessions())
    assert inner.log == ["run a 3.0", "run b None", "close"]
    assert (pool.times.sessions, pool.times.open_s, pool.times.run_s, pool.times.close_s) == (2, 2.0, 4.0, 0.25)
    pool.start()
    assert pool.times.sessions == 0 and pool.times.run_s == 0.0


def test_raw_passes_cover_no_logprobs_the_compared_and_the_kits_own():
    assert raw_settings(5, 0) == [0, 5] and raw_settings(5, 5) == [0, 5] and raw_settings(5, 2) == [0, 2, 5]


def test_the_passes_alternate_their_order_and_the_raw_engine_always_follows_the_async_kit():
    even, odd = pass_order([0, 5], 0), pass_order([0, 5], 1)
    assert even == ["async", "raw-logprobs-0", "raw-logprobs-5", "lockstep"]
    assert odd == ["lockstep", "async", "raw-logprobs-5", "raw-logprobs-0"]
    assert pass_order([0, 5], 2) == even
    for order in (even, odd):
        assert all(order.index("async") < order.index(raw) for raw in ("raw-logprobs-0", "raw-logprobs-5"))


def test_the_decode_step_ratio_compares_mean_step_times_and_needs_logged_steps():
    steps = {"decode_steps": 100, "decode_s": 11.0}
    assert decode_step_ratio(steps, {"decode_steps": 50, "decode_s": 5.0}) == 1.1
    assert decode_step_ratio(steps, {}) is None and decode_step_ratio({}, steps) is None
    assert decode_step_ratio(steps, {"decode_steps": 0, "decode_s": 0.0}) is None
