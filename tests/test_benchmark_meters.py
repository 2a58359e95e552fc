"""The benchmarks' counters: the prefix-cache counter behind vLLM's own stat-logger adapter, the
reset that makes each pass start cold, the CPU meter on real processes, and the summary table
over the benchmarks' JSON files."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys

import pytest

from eval.benchmarks import summary
from eval.benchmarks.cpu_meter import cpu_times
from eval.benchmarks.engine_counters import CacheCounts, EngineCounters, StepCounts
from eval.benchmarks.prefix_cache import reset_prefix_cache


def scheduler_stats(requests: int, queries: int, hits: int, preempted: int = 0, step=None):
    """vLLM's stats of one step: ``step`` is (prompt requests, prompt tokens, decodes, ms) or None
    (the engine logs no step details)."""
    from vllm.v1.metrics.stats import PrefixCacheStats, SchedulerIterationDetails, SchedulerStats

    stats = PrefixCacheStats()
    for _ in range(requests):
        stats.record(num_tokens=queries // requests, num_hits=hits // requests, preempted=False)
    for _ in range(preempted):
        stats.record(num_tokens=1000, num_hits=1000, preempted=True)
    details = None
    if step is not None:
        ctx_requests, ctx_tokens, decodes, ms = step
        details = SchedulerIterationDetails(0, ctx_requests, ctx_tokens, decodes, decodes, ms)
    return SchedulerStats(prefix_cache_stats=stats, iteration_details=details)


def test_the_counters_add_up_what_vllms_adapter_hands_each_engines_logger():
    from vllm.v1.metrics.loggers import PerEngineStatLoggerAdapter

    counter = EngineCounters()
    # vLLM builds a per-engine logger from the factory for each engine index, and routes records by index.
    adapter = PerEngineStatLoggerAdapter(vllm_config=None, engine_indexes=[0, 1],
                                         per_engine_stat_logger_factory=counter)
    adapter.log_engine_initialized()
    adapter.record(scheduler_stats(2, 400, 256), None, engine_idx=0)
    mark = counter.mark()
    adapter.record(scheduler_stats(4, 800, 512, preempted=3), None, engine_idx=1)  # resumed requests left out
    adapter.record(None, None, engine_idx=0)  # an output batch without scheduler stats
    adapter.log()
    assert counter.totals.cache == CacheCounts(6, 1200, 768)
    assert counter.since(mark).cache == CacheCounts(4, 800, 512)
    assert counter.since(mark).cache.report() == {"requests": 4, "queried_tokens": 800, "hit_tokens": 512,
                                                  "prefilled_tokens": 288, "hit_rate": 0.64}
    assert CacheCounts().report()["hit_rate"] is None
    assert counter.totals.steps == StepCounts()  # no step details logged


def test_the_counters_sort_the_engines_steps_into_decode_and_prefill():
    counter = EngineCounters()
    counter.record(scheduler_stats(0, 0, 0, step=(0, 0, 8, 62.5)), None)
    counter.record(scheduler_stats(0, 0, 0, step=(0, 0, 7, 125.0)), None)
    mark = counter.mark()
    counter.record(scheduler_stats(1, 300, 256, step=(1, 44, 7, 500.0)), None)  # a prompt computed beside 7 decodes
    counter.record(scheduler_stats(0, 0, 0, step=(0, 0, 8, 250.0)), None)
    assert counter.totals.steps == StepCounts(decode_steps=3, decode_s=0.4375, prefill_steps=1, prefill_s=0.5,
                                              prefill_tokens=44)
    assert counter.since(mark).steps.report() == {"decode_steps": 1, "decode_s": 0.25, "prefill_steps": 1,
                                                  "prefill_s": 0.5, "prefill_tokens": 44}


class FakeAsyncLLM:
    def __init__(self, empties: bool):
        self.empties, self.calls = empties, 0

    async def reset_prefix_cache(self) -> bool:
        self.calls += 1
        return self.empties


class FakeEngine:
    def __init__(self, empties: bool):
        self.engine = FakeAsyncLLM(empties)


def test_a_pass_starts_cold_or_says_it_did_not(caplog):
    assert asyncio.run(reset_prefix_cache(FakeEngine(empties=True))) is True
    assert not caplog.records
    engine = FakeEngine(empties=False)
    with caplog.at_level(logging.WARNING):
        assert asyncio.run(reset_prefix_cache(engine)) is False
    assert engine.engine.calls == 1 and "starts warm" in caplog.text


BURN = "import time\nend = time.process_time() + {s}\nwhile time.process_time() < end: pass\n"


def test_the_cpu_meter_puts_engine_and_sandbox_processes_in_their_groups():
    before = cpu_times()
    # A child titled like vLLM's engine core (alive when measured), and a sandbox-like child that
    # ends within the window (counted once reaped, through this process's children times).
    engine = subprocess.Popen([sys.executable, "-c", BURN.format(s=0.4) + "print('burnt', flush=True)\ntime.sleep(60)",
                               "EngineCore_DP0"], stdout=subprocess.PIPE, text=True)
    try:
        assert engine.stdout.readline() == "burnt\n"
        subprocess.run([sys.executable, "-c", BURN.format(s=0.4)], check=True)
        used = cpu_times() - before
    finally:
        engine.kill()
        engine.wait()
    assert used.engine >= 0.4 and used.sandbox >= 0.4
    assert 0 <= used.kit < 0.4  # the children's time is not this process's


def bench_folder(tmp_path, overhead: float, extra: dict[str, dict]):
    (tmp_path / "executor.json").write_text(json.dumps({"speedups": {"typical": 80.0},
                                                        "throughput": {"cells_per_s": 30.0}}))
    (tmp_path / "grader.json").write_text(json.dumps({"pairs_per_s": 5000}))
    cache = {"hit_rate": 0.8, "hit_tokens": 80, "queried_tokens": 100, "requests": 5}
    mode = {"engine_idle_share": 0.01, "prefix_cache": cache}
    (tmp_path / "throughput.json").write_text(json.dumps({
        "tool_format": "fences",
        "kit_overhead": {"ratio": overhead, "target": 1.1, "per_problem": {"min": 0.9, "median": 1.0, "max": 1.3}},
        "async_vs_lockstep": {"speedup_wall": 1.4, "target": 1.3, "async": mode, "lockstep": mode},
        "early_stop": {"decided": {"tokens_saved": 0.1, "same_answer": 1.0}},
        "logprobs_cost": {"logprobs": 5, "tokens_per_s_ratio": 0.9, "slowdown": 1.111, "decode_step_ratio": 1.08},
    }))
    (tmp_path / "throughput.md").write_text("details\n")
    for name, report in extra.items():
        (tmp_path / f"prefix_cache_{name}.json").write_text(json.dumps(report))
    return tmp_path


def test_the_summary_shows_logprobs_cost_and_each_formats_hit_rate(tmp_path):
    tagged = {"tool_format": "tagged", "prefix_cache": {"hit_rate": 0.5, "hit_tokens": 5, "queried_tokens": 10,
                                                        "requests": 2}}
    data, text = summary.summarize(bench_folder(tmp_path, 1.2, {"tagged": tagged}))
    overhead = data["kit overhead: SC-TIR wall / raw engine wall, same tokens"]
    assert overhead["met"] is False and overhead["measured"] == "1.2x (per problem: median 1.0x, 0.9-1.3x)"
    logprobs = data["top-5 logprobs: raw engine tokens/s with / without"]
    assert logprobs["measured"] == "0.9x (1.111x the wall, decode steps 1.08x as long)"
    assert data["prefix-cache hit rate, fences format (async SC-TIR)"]["measured"] == "80.0%"
    assert data["prefix-cache hit rate, tagged format"]["measured"] == "50.0%"
    assert "| prefix-cache hit rate, tagged format | 50.0% |" in text and text.endswith("details\n")


def test_the_summary_says_which_formats_it_did_not_measure(tmp_path):
    data, _ = summary.summarize(bench_folder(tmp_path, 1.05, {}))
    assert data["kit overhead: SC-TIR wall / raw engine wall, same tokens"]["met"] is True
    assert data["prefix-cache hit rate, tagged format"]["measured"] == "not measured"
    assert data["prefix-cache hit rate, harmony format"]["measured"] == "not measured"


@pytest.mark.parametrize("name", ["executor.json", "throughput.json"])
def test_the_summary_names_a_missing_benchmark_file(tmp_path, name):
    folder = bench_folder(tmp_path, 1.0, {})
    (folder / name).unlink()
    with pytest.raises(SystemExit, match=name):
        summary.summarize(folder)
