"""One table from the three benchmarks' JSON files (``make bench`` writes them to runs/bench/).

    python -m eval.benchmarks.summary runs/bench

Writes ``summary.md`` and ``summary.json`` beside them: each figure is a ratio (or a rate)
measured side by side within one benchmark run, with its target where the issue sets one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def summarize(folder: Path) -> tuple[dict, str]:
    throughput = json.loads((folder / "throughput.json").read_text())
    executor = json.loads((folder / "executor.json").read_text())
    grader = json.loads((folder / "grader.json").read_text())
    o, a = throughput["kit_overhead"], throughput["async_vs_lockstep"]
    best_rule = max(throughput["early_stop"].items(), key=lambda kv: kv[1]["tokens_saved"])
    rows = [
        ("kit overhead: SC-TIR wall / raw engine wall, same tokens", f"{o['ratio']}x", f"<= {o['target']}x",
         o["ratio"] <= o["target"]),
        ("asynchronous vs lockstep: lockstep wall / async wall", f"{a['speedup_wall']}x", f">= {a['target']}x",
         a["speedup_wall"] >= a["target"]),
        ("engine idle share, async / lockstep",
         f"{a['async']['engine_idle_share']:.1%} / {a['lockstep']['engine_idle_share']:.1%}", "", None),
        (f"early stop, most tokens saved ({best_rule[0]})",
         f"{best_rule[1]['tokens_saved']:.1%} tokens, same answer {best_rule[1]['same_answer']:.0%}", "", None),
        ("executor: spawn per cell / warm session, typical sympy cell", f"{executor['speedups']['typical']:.1f}x",
         ">= 50x", executor["speedups"]["typical"] >= 50),
        ("executor: cells per second, all cell slots busy", f"{executor['throughput']['cells_per_s']:.1f}", "", None),
        ("grader: answers graded per second", f"{grader['pairs_per_s']}", "", None),
    ]
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
