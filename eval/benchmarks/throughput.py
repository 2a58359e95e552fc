"""Benchmark the kit's speed: SC-TIR against the raw engine, asynchronous against lockstep, and
what early stopping saves. Everything is measured side by side in one run, on one engine, the
same problems and settings, so the ratios hold on a noisy machine.

1. Kit overhead: the kit's wall time against the raw engine generating the same number of
   tokens per candidate for the same prompts (vLLM with the same sampling, ``ignore_eos`` and
   fixed lengths). Target: at most 1.10x.
2. Asynchronous against lockstep (Numina's baseline: every candidate generates to its stop,
   then all code runs, then the next round): wall time, tokens per second and the share of
   time the engine sat idle (no request in flight). Target: at least 1.3x faster.
3. Early stop: replayed on the full-vote samples in the order candidates finished, for each
   rule set: tokens and time saved, and how often the early answer is the full vote's.

    python -m eval.benchmarks.throughput --config cpu-smol --problems 4 --json runs/bench/throughput.json
    python -m eval.benchmarks.throughput --config aimo3-h100 --model /path/to/7b --load-format dummy \\
        --ignore-eos   # times the engine on a real architecture with random weights

Executor and grader figures come from ``eval.benchmarks.executor`` / ``.grader``; ``make bench``
runs all three and ``eval.benchmarks.summary`` puts them in one table.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import time
from pathlib import Path

from tqdm import tqdm

from eval import metrics
from eval.splits import load_split
from kit.config import add_config_flags, config_overrides, load_config
from kit.engine import GenerationStep, VllmEngine
from kit.sctir import ProblemResult, ProblemRun
from kit.solver import Solver
from kit.voting import parse_rules

OVERHEAD_TARGET = 1.10
ASYNC_TARGET = 1.3
# Rule sets offered by the kit; the last is the AIMO-2 front-runners' combination.
EARLY_STOP_RULES = {"decided": ["decided"], "4/5": ["4/5"], "5/5": ["5/5"], "4/4": ["4/4"],
                    "aimo2": ["4/4", "5/7", "6/9", "last:4/5"]}


class MeteredEngine:
    """Wraps the engine to record the time no request was in flight (the engine sat idle) and
    the requests in flight integrated over time (the batch the engine had to work with).
    ``clock`` is injectable so that tests measure exact, not slept, intervals."""

    def __init__(self, engine, clock=time.monotonic):
        self.inner = engine
        self.clock = clock
        self.in_flight = 0
        self.idle_s = 0.0
        self.request_s = 0.0  # integral of in_flight over time
        self._idle_since: float | None = None
        self._changed_at = self.clock()

    def start(self) -> None:
        self.idle_s, self.request_s = 0.0, 0.0
        self._idle_since = self._changed_at = self.clock()

    def stop(self) -> float:
        self._account()
        if self._idle_since is not None:
            self.idle_s += self.clock() - self._idle_since
            self._idle_since = None
        return self.idle_s

    def _account(self) -> None:
        now = self.clock()
        self.request_s += self.in_flight * (now - self._changed_at)
        self._changed_at = now

    def encode(self, text: str) -> list[int]:
        return self.inner.encode(text)

    def prompt_ids(self, problem: str) -> list[int]:
        return self.inner.prompt_ids(problem)

    async def generate(self, token_ids: list[int], max_tokens: int, request_id: str) -> GenerationStep:
        if self.in_flight == 0 and self._idle_since is not None:
            self.idle_s += self.clock() - self._idle_since
            self._idle_since = None
        self._account()
        self.in_flight += 1
        try:
            return await self.inner.generate(token_ids, max_tokens, request_id)
        finally:
            self._account()
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle_since = self.clock()

    def shutdown(self) -> None:
        self.inner.shutdown()


@dataclasses.dataclass
class KitRun:
    wall_s: float
    tokens: int
    idle_s: float
    request_s: float
    results: list[ProblemResult]


def run_kit(solver: Solver, metered: MeteredEngine, problems, mode: str, label: str) -> KitRun:
    """The SC-TIR loop in ``mode`` on the solver's loop and sandbox pool, its requests through
    the meter: one engine for both modes and the raw baseline."""
    cfg = dataclasses.replace(solver.cfg, mode=mode)

    async def solve(problem_id: str, problem: str) -> ProblemResult:
        return await ProblemRun(problem_id, metered.prompt_ids(problem), cfg, metered, solver.pool,
                                cfg.problem_time_s).solve()

    results, wall, idle, request_s = [], 0.0, 0.0, 0.0
    for p in tqdm(problems, desc=label, unit="problem", leave=False):
        metered.start()
        started = time.monotonic()
        results.append(solver.run_coroutine(solve(p.id, p.problem)))
        wall += time.monotonic() - started
        idle += metered.stop()
        request_s += metered.request_s
    tokens = sum(c.generated_tokens for r in results for c in r.candidates)
    return KitRun(wall, tokens, idle, request_s, results)


async def generate_fixed(engine: VllmEngine, token_ids: list[int], num_tokens: int, request_id: str) -> int:
    """The raw engine: exactly ``num_tokens`` tokens with the kit's sampling (temperature,
    top_p), no stop string and no EOS. Returns the tokens generated."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt
    from vllm.sampling_params import RequestOutputKind

    params = SamplingParams(temperature=engine.cfg.temperature, top_p=engine.cfg.top_p, max_tokens=num_tokens,
                            min_tokens=num_tokens, ignore_eos=True, output_kind=RequestOutputKind.FINAL_ONLY)
    final = None
    async for output in engine.engine.generate(TokensPrompt(prompt_token_ids=token_ids), params, request_id):
        final = output
    return len(final.outputs[0].token_ids)


def run_raw(solver: Solver, engine: VllmEngine, problems, results: list[ProblemResult]) -> tuple[float, int]:
    """The raw engine generating, for each problem, the tokens each kit candidate generated."""

    async def one(prompt_ids: list[int], lengths: list[int], pid: str) -> int:
        jobs = [generate_fixed(engine, prompt_ids, n, f"raw-{pid}-{i}") for i, n in enumerate(lengths) if n > 0]
        return sum(await asyncio.gather(*jobs))

    wall, tokens = 0.0, 0
    for p, result in tqdm(list(zip(problems, results)), desc="raw engine", unit="problem", leave=False):
        prompt_ids = engine.prompt_ids(p.problem)
        started = time.monotonic()
        tokens += solver.run_coroutine(one(prompt_ids, [c.generated_tokens for c in result.candidates], p.id))
        wall += time.monotonic() - started
    return wall, tokens


def replay_early_stop(results: list[ProblemResult], rules: list[str]) -> dict:
    """Replay a rule set on full-vote samples, candidates in the order they finished. Tokens at
    the stop assume each running candidate generated at an even pace up to its finish."""
    parsed = parse_rules(rules)
    tokens_full = tokens_used = time_full = time_used = 0.0
    agree = fired = 0
    for r in results:
        finished = [c for c in r.candidates if c.finished_at_s is not None]
        end = max((c.finished_at_s for c in finished), default=0.0)
        early = metrics.replay_early_stop(finished, parsed)
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


def measure(args: argparse.Namespace) -> dict:
    overrides = config_overrides(args)
    overrides["early_stop"] = []  # full votes: early stop is replayed afterwards
    problems, profile = load_split(args.split, args.problems)
    overrides["profile"] = overrides["profile"] or profile
    cfg = load_config(args.config, **overrides)
    with Solver(cfg) as solver:
        engine = solver.engine
        metered = MeteredEngine(engine)  # the benchmark's meter between the loop and the engine
        solver.solve(problems[0].problem, "warm-up")  # first-request compilation and caches
        rounds = []
        for r in range(args.rounds):
            # Alternated, so drift in the machine's speed hits both modes alike.
            modes = ("async", "lockstep") if r % 2 == 0 else ("lockstep", "async")
            runs = {mode: run_kit(solver, metered, problems, mode, f"{mode} (round {r + 1})") for mode in modes}
            raw_wall, raw_tokens = run_raw(solver, engine, problems, runs["async"].results)
            rounds.append((runs, raw_wall, raw_tokens))
    kit_wall = sum(runs["async"].wall_s for runs, _, _ in rounds)
    raw_wall = sum(w for _, w, _ in rounds)
    modes = {}
    for mode in ("async", "lockstep"):
        wall = sum(runs[mode].wall_s for runs, _, _ in rounds)
        tokens = sum(runs[mode].tokens for runs, _, _ in rounds)
        idle = sum(runs[mode].idle_s for runs, _, _ in rounds)
        request_s = sum(runs[mode].request_s for runs, _, _ in rounds)
        modes[mode] = {"wall_s": round(wall, 2), "tokens": tokens, "tokens_per_s": round(tokens / wall, 1),
                       "engine_idle_share": round(idle / wall, 3),
                       "mean_requests_in_flight": round(request_s / wall, 2),
                       "code_cells": sum(len(c.cells) for runs, _, _ in rounds for res in runs[mode].results
                                         for c in res.candidates),
                       # CPU time the cells took: on a CPU-only machine it competes with the engine.
                       "code_execution_s": round(sum(c.execution_s for runs, _, _ in rounds
                                                     for res in runs[mode].results for c in res.candidates), 2)}
    all_async = [res for runs, _, _ in rounds for res in runs["async"].results]
    return {
        "config": args.config, "model": cfg.model or "embedded SmolLM2-135M-Instruct", "split": args.split,
        "problems": len(problems), "rounds": args.rounds, "num_samples": cfg.num_samples,
        "max_code_rounds": cfg.max_code_rounds, "max_new_tokens": cfg.max_new_tokens,
        "kit_overhead": {"kit_wall_s": round(kit_wall, 2), "raw_wall_s": round(raw_wall, 2),
                         "tokens": sum(t for _, _, t in rounds), "ratio": round(kit_wall / raw_wall, 3),
                         "target": OVERHEAD_TARGET},
        "async_vs_lockstep": {**modes, "speedup_wall": round(modes["lockstep"]["wall_s"] / modes["async"]["wall_s"], 3),
                              "speedup_tokens_per_s": round(modes["async"]["tokens_per_s"]
                                                            / modes["lockstep"]["tokens_per_s"], 3),
                              "target": ASYNC_TARGET},
        "early_stop": {name: replay_early_stop(all_async, rules) for name, rules in EARLY_STOP_RULES.items()},
    }


def markdown(report: dict) -> str:
    o, a = report["kit_overhead"], report["async_vs_lockstep"]
    lines = [
        f"Throughput on {report['model']} ({report['config']}), {report['problems']} {report['split']} problems "
        f"x {report['rounds']} rounds, N={report['num_samples']}, M={report['max_code_rounds']}, "
        f"{report['max_new_tokens']} new tokens per step.",
        "",
        "| measure | kit | baseline | ratio | target |",
        "|---|---|---|---|---|",
        f"| kit overhead (wall, same tokens) | {o['kit_wall_s']} s | raw engine {o['raw_wall_s']} s | "
        f"{o['ratio']}x | <= {o['target']}x |",
        f"| async vs lockstep (wall) | {a['async']['wall_s']} s | lockstep {a['lockstep']['wall_s']} s | "
        f"{a['speedup_wall']}x faster | >= {a['target']}x |",
        f"| async vs lockstep (tokens/s) | {a['async']['tokens_per_s']} | {a['lockstep']['tokens_per_s']} | "
        f"{a['speedup_tokens_per_s']}x | |",
        f"| engine idle share | {a['async']['engine_idle_share']:.1%} | {a['lockstep']['engine_idle_share']:.1%} | | |",
        f"| mean requests in flight (of N={report['num_samples']}) | {a['async']['mean_requests_in_flight']} | "
        f"{a['lockstep']['mean_requests_in_flight']} | | |",
        f"| code cells (execution time) | {a['async']['code_cells']} ({a['async']['code_execution_s']} s) | "
        f"{a['lockstep']['code_cells']} ({a['lockstep']['code_execution_s']} s) | | |",
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
    parser.add_argument("--rounds", type=int, default=2, help="Repeats of the whole comparison (modes alternate).")
    parser.add_argument("--json", type=Path, help="Write the results here (and a .md beside it).")
    add_config_flags(parser)
    args = parser.parse_args(argv)
    report = measure(args)
    text = markdown(report)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        args.json.with_suffix(".md").write_text(text)
    return report


if __name__ == "__main__":
    main()
