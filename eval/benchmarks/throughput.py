"""Benchmark the kit's speed: SC-TIR against the raw engine, asynchronous against lockstep, what
early stopping saves, what top-k logprobs cost and how much of each prompt the prefix cache
served. Everything is measured side by side in one run, on one engine, the same problems and
settings, so the ratios hold on a noisy machine; each pass starts with the prefix cache emptied.

1. Kit overhead: the kit's wall time against the raw engine generating the same number of
   tokens per candidate for the same prompts (vLLM with the same sampling, ``ignore_eos`` and
   fixed lengths: ``eval.benchmarks.raw_engine``). Target: at most 1.10x. Where the difference
   goes: the CPU time of this process, the engine's processes and the sandboxes in each pass
   (``eval.benchmarks.cpu_meter``), and the time the loop waited on the sandbox and tokenizer
   (``eval.benchmarks.meters``).
2. Asynchronous against lockstep (Numina's baseline: every candidate generates to its stop,
   then all code runs, then the next round): wall time, tokens per second and the share of
   time the engine sat idle (no request in flight). Target: at least 1.3x faster.
3. Early stop: replayed on the full-vote samples in the order candidates finished, for each
   rule set: tokens and time saved, and how often the early answer is the full vote's.
4. Logprobs: the raw engine on the same tokens with top-``--compare-logprobs`` logprobs (each
   token's entropy computed from them, as the kit does) and without; one engine serves both
   (logprobs is a per-request setting), the two passes alternating from round to round.
5. Prefix cache: the hit rate of each pass, from vLLM's own counters
   (``eval.benchmarks.prefix_cache``; other tool formats: that module's command).

    python -m eval.benchmarks.throughput --config cpu-smol --problems 4 --json runs/bench/throughput.json
    python -m eval.benchmarks.throughput --config aimo3-h100 --model /path/to/7b --load-format dummy \\
        --ignore-eos   # times the engine on a real architecture with random weights

Executor and grader figures come from ``eval.benchmarks.executor`` / ``.grader``; ``make bench``
runs them all and ``eval.benchmarks.summary`` puts them in one table.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

from tqdm import tqdm

from eval import metrics
from eval.benchmarks.cpu_meter import CpuTimes, cpu_times
from eval.benchmarks.meters import MeteredEngine, MeteredPool, SandboxTimes
from eval.benchmarks.engine_counters import EngineCounters, EngineCounts
from eval.benchmarks.prefix_cache import counting_engine_factory, fitted, publish, reset_prefix_cache
from eval.benchmarks.raw_engine import RawRun, generate_fixed, run_raw
from eval.splits import load_split
from kit.config import VoteConfig, add_config_flags, config_overrides, load_config
from kit.sctir import ProblemResult, ProblemRun
from kit.solver import Solver
from kit.voting import parse_rules

OVERHEAD_TARGET = 1.10
ASYNC_TARGET = 1.3
# Rule sets offered by the kit; the last is the AIMO-2 front-runners' combination.
EARLY_STOP_RULES = {"decided": ["decided"], "4/5": ["4/5"], "5/5": ["5/5"], "4/4": ["4/4"],
                    "aimo2": ["4/4", "5/7", "6/9", "last:4/5"]}


@dataclasses.dataclass
class PassCosts:
    """What one pass cost beyond its wall time: vLLM's counts (prefix cache, steps) and CPU by
    process group."""

    engine: EngineCounts
    cpu: CpuTimes
    started_cold: bool


class PassMeter:
    """Runs a pass with the prefix cache emptied first, and counts what it cost."""

    def __init__(self, solver: Solver, counter: EngineCounters):
        self.solver, self.counter = solver, counter

    def run(self, work):
        cold = self.solver.run_coroutine(reset_prefix_cache(self.solver.engine))
        engine_mark, cpu_mark = self.counter.mark(), cpu_times()
        value = work()
        return value, PassCosts(self.counter.since(engine_mark), cpu_times() - cpu_mark, cold)


@dataclasses.dataclass
class KitRun:
    wall_s: float
    tokens: int
    idle_s: float
    request_s: float
    encode_s: float
    sandbox: SandboxTimes
    results: list[ProblemResult]


def run_kit(solver: Solver, metered: MeteredEngine, pool: MeteredPool, problems, mode: str) -> KitRun:
    """The SC-TIR loop in ``mode`` on the solver's loop, its requests through the engine meter and
    its sessions through the pool meter: one engine for both modes and the raw baseline."""
    cfg = dataclasses.replace(solver.cfg, mode=mode)

    async def solve(problem_id: str, problem: str) -> ProblemResult:
        return await ProblemRun(problem_id, metered.prompt_ids(problem), cfg, metered, pool,
                                cfg.problem_time_s).solve()

    results, wall, idle, request_s, encode_s = [], 0.0, 0.0, 0.0, 0.0
    pool.start()
    for p in problems:
        metered.start()
        started = time.monotonic()
        results.append(solver.run_coroutine(solve(p.id, p.problem)))
        wall += time.monotonic() - started
        idle += metered.stop()
        request_s += metered.request_s
        encode_s += metered.encode_s
    tokens = sum(c.generated_tokens for r in results for c in r.candidates)
    return KitRun(wall, tokens, idle, request_s, encode_s, pool.times, results)


def replay_early_stop(results: list[ProblemResult], rules: list[str], vote: VoteConfig) -> dict:
    """Replay a rule set on full-vote samples, candidates in the order they finished, voting as
    the run did (``vote``). Tokens at the stop assume each running candidate generated at an even
    pace up to its finish."""
    parsed = parse_rules(rules)
    tokens_full = tokens_used = time_full = time_used = 0.0
    agree = fired = 0
    for r in results:
        finished = [c for c in r.candidates if c.finished_at_s is not None]
        end = max((c.finished_at_s for c in finished), default=0.0)
        early = metrics.replay_early_stop(finished, parsed, vote)
        stop_at = early.stopped_at_s if early else end
        fired += early is not None
        for c in finished:
            share = 1.0 if c.finished_at_s <= stop_at else stop_at / c.finished_at_s
            tokens_used += share * c.generated_tokens
        tokens_full += sum(c.generated_tokens for c in finished)
        time_full, time_used = time_full + end, time_used + stop_at
        agree += (early.vote if early else r.vote).answer == r.vote.answer
    return {
        "rules": rules,
        "fired": fired,
        "tokens_saved": 1 - tokens_used / tokens_full if tokens_full else 0.0,
        "time_saved": 1 - time_used / time_full if time_full else 0.0,
        "same_answer": agree / len(results) if results else 0.0,
    }


ASYNC, LOCKSTEP = "async", "lockstep"


def raw_pass(logprobs: int) -> str:
    return f"raw-logprobs-{logprobs}"


def pass_order(raw_logprobs: list[int], turn: int) -> list[str]:
    """The passes one problem goes through on its ``turn``: the kit in both modes and the raw
    engine at each logprobs setting, in an order that reverses from turn to turn (so that drift in
    the machine's speed hits them alike), the asynchronous kit always before the raw passes, which
    generate the lengths its candidates did."""
    raws = [raw_pass(lp) for lp in raw_logprobs]
    return [ASYNC, *raws, LOCKSTEP] if turn % 2 == 0 else [LOCKSTEP, ASYNC, *reversed(raws)]


def raw_settings(compare_logprobs: int, kit_logprobs: int) -> list[int]:
    """The logprobs settings of the raw passes: none, the compared top-k and the kit's own (the
    overhead baseline)."""
    return sorted({0, compare_logprobs, kit_logprobs})


def kit_totals(runs: list[tuple[KitRun, PassCosts]]) -> dict:
    wall = sum(run.wall_s for run, _ in runs)
    tokens = sum(run.tokens for run, _ in runs)
    candidates = [c for run, _ in runs for res in run.results for c in res.candidates]
    return {"wall_s": round(wall, 2), "tokens": tokens, "tokens_per_s": round(tokens / wall, 1),
            "engine_idle_share": round(sum(run.idle_s for run, _ in runs) / wall, 3),
            "mean_requests_in_flight": round(sum(run.request_s for run, _ in runs) / wall, 2),
            "code_cells": sum(len(c.cells) for c in candidates),
            # CPU time the cells took: on a CPU-only machine it competes with the engine.
            "code_execution_s": round(sum(c.execution_s for c in candidates), 2),
            "reply_encode_s": round(sum(run.encode_s for run, _ in runs), 3),
            "sandbox": sum((run.sandbox for run, _ in runs), SandboxTimes()).report(),
            "cpu": sum((costs.cpu for _, costs in runs), CpuTimes()).report(),
            "prefix_cache": cache_report([costs for _, costs in runs]),
            "engine_steps": steps_report([costs for _, costs in runs])}


def raw_totals(runs: list[tuple[RawRun, PassCosts]]) -> dict:
    wall = sum(run.wall_s for run, _ in runs)
    tokens = sum(run.tokens for run, _ in runs)
    return {"wall_s": round(wall, 2), "tokens": tokens, "tokens_per_s": round(tokens / wall, 1),
            "entropy_s": round(sum(run.entropy_s for run, _ in runs), 3),
            "cpu": sum((costs.cpu for _, costs in runs), CpuTimes()).report(),
            "prefix_cache": cache_report([costs for _, costs in runs]),
            "engine_steps": steps_report([costs for _, costs in runs])}


def spread(numerators: list, denominators: list) -> dict:
    """The per-problem wall ratios of two passes (each problem's own pair, run side by side): how
    much the total's ratio can be trusted on a noisy machine."""
    ratios = sorted(a.wall_s / b.wall_s for (a, _), (b, _) in zip(numerators, denominators, strict=True))
    return {"min": round(ratios[0], 3), "median": round(statistics.median(ratios), 3), "max": round(ratios[-1], 3)}


def decode_step_ratio(steps: dict, baseline: dict) -> float | None:
    """Mean decode-step time over the baseline's: a cost per token that prefill steps and the
    passes' lengths do not blur (None when the engine did not log its steps)."""
    if not steps or not baseline or not steps["decode_steps"] or not baseline["decode_steps"]:
        return None
    return round((steps["decode_s"] / steps["decode_steps"]) / (baseline["decode_s"] / baseline["decode_steps"]), 3)


def cache_report(costs: list[PassCosts]) -> dict:
    total = sum((c.engine for c in costs), EngineCounts())
    return {**total.cache.report(), "started_cold": all(c.started_cold for c in costs)}


def steps_report(costs: list[PassCosts]) -> dict:
    """The engine's steps (empty when the engine did not log them)."""
    total = sum((c.engine for c in costs), EngineCounts()).steps
    return total.report() if total.decode_steps + total.prefill_steps else {}


def run_passes(solver: Solver, counter: EngineCounters, problems, rounds: int, raw_logprobs: list[int]):
    """Every problem, ``rounds`` times, through each pass (``pass_order``); the runs by pass."""
    engine = solver.engine
    metered, pool = MeteredEngine(engine), MeteredPool(solver.pool)  # between the loop and the engine, the pool
    meter = PassMeter(solver, counter)
    raw_logprobs_of = {raw_pass(lp): lp for lp in raw_logprobs}
    passes: dict[str, list] = {name: [] for name in pass_order(raw_logprobs, 0)}
    turns = [p for _ in range(rounds) for p in problems]
    for turn, p in enumerate(tqdm(turns, desc="problems x rounds", unit="problem", leave=False)):
        async_results: list[ProblemResult] = []
        for name in pass_order(raw_logprobs, turn):
            if name in (ASYNC, LOCKSTEP):
                run, costs = meter.run(lambda mode=name: run_kit(solver, metered, pool, [p], mode))
                if name == ASYNC:
                    async_results = run.results
            else:
                run, costs = meter.run(lambda lp=raw_logprobs_of[name]: run_raw(solver, engine, [p], async_results, lp))
            passes[name].append((run, costs))
    return passes


def measure(args: argparse.Namespace) -> dict:
    overrides = config_overrides(args)
    overrides["early_stop"] = []  # full votes: early stop is replayed afterwards
    problems, profile = load_split(args.split, args.problems)
    overrides["profile"] = overrides["profile"] or profile
    cfg = fitted(load_config(args.config, **overrides))
    counter = EngineCounters()
    raw_logprobs = raw_settings(args.compare_logprobs, cfg.logprobs)
    with Solver(cfg, engine_factory=counting_engine_factory(counter)) as solver:
        engine = solver.engine
        solver.solve(problems[0].problem, "warm-up")  # first-request compilation and caches
        solver.run_coroutine(generate_fixed(engine, engine.prompt_ids(problems[0].problem), 8, "warm-up-logprobs",
                                            args.compare_logprobs))
        passes = run_passes(solver, counter, problems, args.rounds, raw_logprobs)
    modes = {mode: kit_totals(passes[mode]) for mode in (ASYNC, LOCKSTEP)}
    raws = {lp: raw_totals(passes[raw_pass(lp)]) for lp in raw_logprobs}
    baseline = raws[cfg.logprobs]
    all_async = [res for run, _ in passes[ASYNC] for res in run.results]
    raw_baseline = passes[raw_pass(cfg.logprobs)]
    off, on = raws[0], raws[args.compare_logprobs]
    return {
        "config": args.config, "model": cfg.model or "embedded SmolLM2-135M-Instruct", "split": args.split,
        "problems": len(problems), "rounds": args.rounds, "num_samples": cfg.num_samples,
        "max_code_rounds": cfg.max_code_rounds, "max_new_tokens": cfg.max_new_tokens,
        "tool_format": cfg.tool_format.kind, "kit_logprobs": cfg.logprobs,
        "kit_overhead": {"kit_wall_s": modes[ASYNC]["wall_s"], "raw_wall_s": baseline["wall_s"],
                         "tokens": baseline["tokens"], "ratio": round(modes[ASYNC]["wall_s"] / baseline["wall_s"], 3),
                         "target": OVERHEAD_TARGET, "per_problem": spread(passes[ASYNC], raw_baseline),
                         "kit_cpu": modes[ASYNC]["cpu"], "raw_cpu": baseline["cpu"]},
        "async_vs_lockstep": {**modes, "speedup_wall": round(modes[LOCKSTEP]["wall_s"] / modes[ASYNC]["wall_s"], 3),
                              "speedup_tokens_per_s": round(modes[ASYNC]["tokens_per_s"]
                                                            / modes[LOCKSTEP]["tokens_per_s"], 3),
                              "target": ASYNC_TARGET},
        "logprobs_cost": {"logprobs": args.compare_logprobs, "off": off, "on": on,
                          "decode_step_ratio": decode_step_ratio(on["engine_steps"], off["engine_steps"]),
                          "slowdown": round(on["wall_s"] / off["wall_s"], 3),
                          "per_problem_slowdown": spread(passes[raw_pass(args.compare_logprobs)], passes[raw_pass(0)]),
                          "tokens_per_s_ratio": round(on["tokens_per_s"] / off["tokens_per_s"], 3)},
        "raw_engine": {str(lp): totals for lp, totals in raws.items()},
        "early_stop": {name: replay_early_stop(all_async, rules, cfg.vote) for name, rules in EARLY_STOP_RULES.items()},
    }


def rate(cache: dict) -> str:
    return "n/a" if cache["hit_rate"] is None else f"{cache['hit_rate']:.1%}"


def cpu_cell(cpu: dict) -> str:
    return f"{cpu['kit_process_cpu_s']} / {cpu['engine_cpu_s']} / {cpu['sandbox_cpu_s']}"


def steps_rows(kit: dict, raw: dict) -> list[str]:
    """The engine's steps in the kit's and the raw pass, where the engine logged them: the kit's
    own cost to the engine is its extra steps (prefill after each code round)."""
    if not kit or not raw:
        return []
    return [f"| engine steps: decode (s) / with a prefill (s, prompt tokens) | {kit['decode_steps']} "
            f"({kit['decode_s']} s) / {kit['prefill_steps']} ({kit['prefill_s']} s, {kit['prefill_tokens']}) | "
            f"{raw['decode_steps']} ({raw['decode_s']} s) / {raw['prefill_steps']} ({raw['prefill_s']} s, "
            f"{raw['prefill_tokens']}) | | |"]


def markdown(report: dict) -> str:
    o, a, lp = report["kit_overhead"], report["async_vs_lockstep"], report["logprobs_cost"]
    baseline = report["raw_engine"][str(report["kit_logprobs"])]
    lines = [
        f"Throughput on {report['model']} ({report['config']}, {report['tool_format']} format), "
        f"{report['problems']} {report['split']} problems x {report['rounds']} rounds, N={report['num_samples']}, "
        f"M={report['max_code_rounds']}, {report['max_new_tokens']} new tokens per step.",
        "",
        "| measure | kit | baseline | ratio | target |",
        "|---|---|---|---|---|",
        f"| kit overhead (wall, same tokens) | {o['kit_wall_s']} s | raw engine {o['raw_wall_s']} s | "
        f"{o['ratio']}x (per problem {o['per_problem']['min']}-{o['per_problem']['max']}) | <= {o['target']}x |",
        f"| CPU s: this process / engine / sandboxes | {cpu_cell(o['kit_cpu'])} | {cpu_cell(o['raw_cpu'])} | | |",
        *steps_rows(a["async"]["engine_steps"], baseline["engine_steps"]),
        f"| async vs lockstep (wall) | {a['async']['wall_s']} s | lockstep {a['lockstep']['wall_s']} s | "
        f"{a['speedup_wall']}x faster | >= {a['target']}x |",
        f"| async vs lockstep (tokens/s) | {a['async']['tokens_per_s']} | {a['lockstep']['tokens_per_s']} | "
        f"{a['speedup_tokens_per_s']}x | |",
        f"| engine idle share | {a['async']['engine_idle_share']:.1%} | {a['lockstep']['engine_idle_share']:.1%} | | |",
        f"| mean requests in flight (of N={report['num_samples']}) | {a['async']['mean_requests_in_flight']} | "
        f"{a['lockstep']['mean_requests_in_flight']} | | |",
        f"| code cells (execution time) | {a['async']['code_cells']} ({a['async']['code_execution_s']} s) | "
        f"{a['lockstep']['code_cells']} ({a['lockstep']['code_execution_s']} s) | | |",
        f"| prefix-cache hit rate (async / lockstep / raw) | {rate(a['async']['prefix_cache'])} | "
        f"{rate(a['lockstep']['prefix_cache'])} / raw {rate(baseline['prefix_cache'])} | | |",
        f"| top-{lp['logprobs']} logprobs vs none (raw engine, same tokens: tokens/s) | {lp['on']['tokens_per_s']} | "
        f"{lp['off']['tokens_per_s']} | {lp['tokens_per_s_ratio']}x ({lp['slowdown']}x the wall; decode steps "
        f"{lp['decode_step_ratio']}x as long) | |",
        "",
        "| early-stop rules | fired | tokens saved | time saved | same answer as the full vote |",
        "|---|---|---|---|---|",
    ]
    for name, e in report["early_stop"].items():
        lines.append(f"| {name} (`{', '.join(e['rules'])}`) | {e['fired']} | {e['tokens_saved']:.1%} | "
                     f"{e['time_saved']:.1%} | {e['same_answer']:.0%} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="cpu-smol", help="Kit config: a path or a name in kit/configs.")
    parser.add_argument("--split", default="gsm8k", help="Problems to run (a split name or a file).")
    parser.add_argument("--problems", type=int, default=4, help="First K problems of the split.")
    parser.add_argument("--rounds", type=int, default=2,
                        help="Repeats of the whole comparison (the passes' order alternates from problem to problem).")
    parser.add_argument("--compare-logprobs", type=int, default=5,
                        help="Top-k logprobs whose cost is measured on the raw engine against none (at least 1).")
    parser.add_argument("--json", type=Path, help="Write the results here (and a .md beside it).")
    add_config_flags(parser)
    args = parser.parse_args(argv)
    if args.compare_logprobs < 1:
        parser.error(f"--compare-logprobs: must be at least 1, got {args.compare_logprobs}")
    report = measure(args)
    publish(report, markdown(report), args.json)
    return report


if __name__ == "__main__":
    main()
