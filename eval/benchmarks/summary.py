"""One table from the benchmarks' JSON files (``make bench`` writes them to runs/bench/).

    python -m eval.benchmarks.summary runs/bench

Writes ``summary.md`` and ``summary.json`` beside them: each figure is a ratio (or a rate)
measured side by side within one benchmark run, with its target where the issue sets one. The
prefix-cache hit rate of each tool format comes from throughput.json (its own format) and from
``prefix_cache_<format>.json`` (``eval.benchmarks.prefix_cache``); a format with neither is
shown as not measured.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

FORMATS = ("fences", "tagged", "harmony")


def read(folder: Path, name: str) -> dict:
    path = folder / name
    if not path.is_file():
        raise SystemExit(f"summary: {path} is missing (make bench writes it)")
    return json.loads(path.read_text())


def hit_rate(cache: dict) -> str:
    if cache["hit_rate"] is None:
        return "no requests"
    return f"{cache['hit_rate']:.1%}"


def prefix_cache_rows(folder: Path, throughput: dict) -> list[tuple]:
    """One row per tool format: throughput.json's own (its async SC-TIR passes), the others from
    their prefix_cache_<format>.json."""
    measured = {throughput["tool_format"]: (f"{throughput['tool_format']} format (async SC-TIR)",
                                            throughput["async_vs_lockstep"]["async"]["prefix_cache"])}
    for path in sorted(folder.glob("prefix_cache_*.json")):
        report = json.loads(path.read_text())
        measured.setdefault(report["tool_format"], (f"{report['tool_format']} format", report["prefix_cache"]))
    rows = []
    for kind in FORMATS:
        label, cache = measured.get(kind, (f"{kind} format", None))
        rows.append((f"prefix-cache hit rate, {label}", "not measured" if cache is None else hit_rate(cache), "",
                     None))
    return rows


def summarize(folder: Path) -> tuple[dict, str]:
    throughput = read(folder, "throughput.json")
    executor = read(folder, "executor.json")
    grader = read(folder, "grader.json")
    o, a, lp = throughput["kit_overhead"], throughput["async_vs_lockstep"], throughput["logprobs_cost"]
    best_rule = max(throughput["early_stop"].items(), key=lambda kv: kv[1]["tokens_saved"])
    rows = [
        ("kit overhead: SC-TIR wall / raw engine wall, same tokens",
         f"{o['ratio']}x (per problem: median {o['per_problem']['median']}x, "
         f"{o['per_problem']['min']}-{o['per_problem']['max']}x)", f"<= {o['target']}x", o["ratio"] <= o["target"]),
        ("asynchronous vs lockstep: lockstep wall / async wall", f"{a['speedup_wall']}x", f">= {a['target']}x",
         a["speedup_wall"] >= a["target"]),
        ("engine idle share, async / lockstep",
         f"{a['async']['engine_idle_share']:.1%} / {a['lockstep']['engine_idle_share']:.1%}", "", None),
        (f"early stop, most tokens saved ({best_rule[0]})",
         f"{best_rule[1]['tokens_saved']:.1%} tokens, same answer {best_rule[1]['same_answer']:.0%}", "", None),
        (f"top-{lp['logprobs']} logprobs: raw engine tokens/s with / without",
         f"{lp['tokens_per_s_ratio']}x ({lp['slowdown']}x the wall, decode steps {lp['decode_step_ratio']}x as long)",
         "", None),
        *prefix_cache_rows(folder, throughput),
        ("executor: spawn per cell / warm session, typical sympy cell", f"{executor['speedups']['typical']:.1f}x",
         ">= 50x", executor["speedups"]["typical"] >= 50),
        ("executor: cells per second, all cell slots busy", f"{executor['throughput']['cells_per_s']:.1f}", "", None),
        ("grader: answers graded per second", f"{grader['pairs_per_s']}", "", None),
    ]
    selection_path = folder / "selection.json"
    if selection_path.is_file():  # eval.benchmarks.selection (issue #14)
        sel = json.loads(selection_path.read_text())
        rows.append((f"eval select over {sel['candidates']} candidates ({sel['problems']} x {sel['samples_per_problem']})",
                     f"{sel['elapsed_s']} s (CPU {sel['cpu_s']} s)", "< 60 s", sel["elapsed_s"] < 60))
    lines = ["| benchmark | measured | target | met |", "|---|---|---|---|"]
    for name, value, target, met in rows:
        lines.append(f"| {name} | {value} | {target} | {'' if met is None else ('yes' if met else 'no')} |")
    text = "\n".join(lines) + "\n\n" + (folder / "throughput.md").read_text()
    data = {name: {"measured": value, "target": target, "met": met} for name, value, target, met in rows}
    return data, text


def main(argv: list[str] | None = None) -> None:
    folder = Path((argv or sys.argv[1:] or ["runs/bench"])[0])
    data, text = summarize(folder)
    (folder / "summary.json").write_text(json.dumps(data, indent=2) + "\n")
    (folder / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
