"""The benchmarks' counters: the prefix-cache counter behind vLLM's own stat-logger adapter, the
reset that makes each pass start cold, the CPU meter on real processes, and the summary table
over the benchmarks' JSON files."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time

import pytest

from eval.benchmarks import summary
from eval.benchmarks.cpu_meter import cpu_times
from eval.benchmarks.prefix_cache import CacheCounts, PrefixCacheCounter, reset_prefix_cache


def scheduler_stats(requests: int, queries: int, hits: int, preempted: int = 0):
    from vllm.v1.metrics.stats import PrefixCacheStats, SchedulerStats

    stats = PrefixCacheStats()
    for _ in range(requests):
        stats.record(num_tokens=queries // requests, num_hits=hits // requests, preempted=False)
    for _ in range(preempted):
        stats.record(num_tokens=1000, num_hits=1000, preempted=True)
    return SchedulerStats(prefix_cache_stats=stats)


def test_the_counter_adds_up_what_vllms_adapter_hands_each_engines_logger():
    from vllm.v1.metrics.loggers import PerEngineStatLoggerAdapter

    counter = PrefixCacheCounter()
    # vLLM builds a per-engine logger from the factory for each engine index, and routes records by index.
    adapter = PerEngineStatLoggerAdapter(vllm_config=None, engine_indexes=[0, 1],
                                         per_engine_stat_logger_factory=counter)
    adapter.log_engine_initialized()
    adapter.record(scheduler_stats(2, 400, 256), None, engine_idx=0)
    mark = counter.mark()
    adapter.record(scheduler_stats(4, 800, 512, preempted=3), None, engine_idx=1)  # resumed requests left out
    adapter.record(None, None, engine_idx=0)  # an output batch without scheduler stats
    adapter.log()
    assert counter.totals == CacheCounts(6, 1200, 768)
    assert counter.since(mark) == CacheCounts(4, 800, 512)
    assert counter.since(mark).report() == {"requests": 4, "queried_tokens": 800, "hit_tokens": 512,
                                            "hit_rate": 0.64}
    assert CacheCounts().report()["hit_rate"] is None


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
    # A child titled like vLLM's engine core, and a sandbox-like child that ends (reaped) within the window.
    engine = subprocess.Popen([sys.executable, "-c", BURN.format(s=0.4) + "time.sleep(30)", "EngineCore_DP0"])
    subprocess.run([sys.executable, "-c", BURN.format(s=0.4)], check=True)
    deadline = time.monotonic() + 20
    while cpu_times().engine - before.engine < 0.4 and time.monotonic() < deadline:
        time.sleep(0.05)
    used = cpu_times() - before
    engine.kill()
    engine.wait()
    assert used.engine >= 0.4
    assert used.sandbox >= 0.4  # the ended child, through this process's reaped children
    assert 0 <= used.kit < 5


def bench_folder(tmp_path, overhead: float, extra: dict[str, dict]):
    (tmp_path / "executor.json").write_text(json.dumps({"speedups": {"typical": 80.0},
                                                        "throughput": {"cells_per_s": 30.0}}))
    (tmp_path / "grader.json").write_text(json.dumps({"pairs_per_s": 5000}))
    cache = {"hit_rate": 0.8, "hit_tokens": 80, "queried_tokens": 100, "requests": 5}
    mode = {"engine_idle_share": 0.01, "prefix_cache": cache}
    (tmp_path / "throughput.json").write_text(json.dumps({
        "tool_format": "fences",
        "kit_overhead": {"ratio": overhead, "target": 1.1},
        "async_vs_lockstep": {"speedup_wall": 1.4, "target": 1.3, "async": mode, "lockstep": mode},
        "early_stop": {"decided": {"tokens_saved": 0.1, "same_answer": 1.0}},
        "logprobs_cost": {"logprobs": 5, "tokens_per_s_ratio": 0.9, "slowdown": 1.111},
    }))
    (tmp_path / "throughput.md").write_text("details\n")
    for name, report in extra.items():
        (tmp_path / f"prefix_cache_{name}.json").write_text(json.dumps(report))
    return tmp_path


def test_the_summary_shows_logprobs_cost_and_each_formats_hit_rate(tmp_path):
    tagged = {"tool_format": "tagged", "prefix_cache": {"hit_rate": 0.5, "hit_tokens": 5, "queried_tokens": 10,
                                                        "requests": 2}}
    data, text = summary.summarize(bench_folder(tmp_path, 1.2, {"tagged": tagged}))
    assert data["kit overhead: SC-TIR wall / raw engine wall, same tokens"]["met"] is False
    logprobs = data["top-5 logprobs: raw engine tokens/s with / without"]
    assert logprobs["measured"] == "0.9x (1.111x the wall)"
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
