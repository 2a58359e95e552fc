"""Benchmark kit.sandbox.pool: a typical tool cell in a warm session vs. one fresh interpreter per cell.

The baseline is what Numina's notebook did: write the cell, behind an `import math, numpy,
sympy` header, to a temporary file and run `python3 file` in a subprocess. Both are measured
in the same run, interleaved, on cells with varying coefficients so that sympy's cache does
not make repeats free. Then every cell slot is kept busy to measure cells per second.

    python -m eval.benchmarks.executor [--repeats 20] [--json results.json]
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from kit.sandbox.pool import ExecutorPool

# The typical cell: a sympy solve of a polynomial with integer roots, as competition
# problems usually have (distinct coefficients each time, so sympy's cache does not help).
CELL = "x = sympy.symbols('x')\nprint(sympy.solve(x**2 - {a}*x + {b}, x))"
# The same solve with irrational roots: ~25 ms of sympy's own work, which bounds the ratio.
HARD_CELL = "x = sympy.symbols('x')\nprint(sympy.solve(x**2 - {a}*x + {c}, x))"
# Shows the executor's own overhead.
TRIVIAL_CELL = "print({a} + {b})"
WORKLOADS = {"typical": CELL, "hard": HARD_CELL, "trivial": TRIVIAL_CELL}
SPAWN_HEADER = "import math\nimport numpy\nimport sympy\n"
TARGET_SPEEDUP = 50.0


def cell_code(index: int, template: str = CELL) -> str:
    # Roots r and r + 1 + index % 7 (integers) for CELL; b + 1 makes HARD_CELL's roots irrational.
    r, s = index % 89 + 2, index % 89 + 3 + index % 7
    return template.format(a=r + s, b=r * s, c=r * s + 1)


def run_spawned(code: str, directory: str) -> tuple[float, str]:
    path = Path(directory) / "cell.py"
    path.write_text(SPAWN_HEADER + code + "\n")
    started = time.perf_counter()
    command = [sys.executable, str(path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=directory, check=False)
    return time.perf_counter() - started, done.stdout


def summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "median_ms": 1000 * statistics.median(ordered),
        "p90_ms": 1000 * ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
        "min_ms": 1000 * ordered[0],
    }


async def measure_latency(pool: ExecutorPool, repeats: int) -> dict:
    session = await pool.open_session()
    await session.run(cell_code(0))  # the session's first cell, as in a real candidate's second turn
    seconds = {f"{mode}_{name}": [] for name in WORKLOADS for mode in ("warm", "spawn")}
    mismatches = 0
    with tempfile.TemporaryDirectory() as directory:
        for index in tqdm(range(1, repeats + 1), desc="latency (warm vs spawn)", unit="round"):
            for name, template in WORKLOADS.items():
                code = cell_code(index, template)
                started = time.perf_counter()
                result = await session.run(code, timeout_s=60)
                seconds[f"warm_{name}"].append(time.perf_counter() - started)
                spawn_seconds, stdout = await asyncio.to_thread(run_spawned, code, directory)
                seconds[f"spawn_{name}"].append(spawn_seconds)
                mismatches += result.output != stdout
    await session.close()
    return {key: summary(values) for key, values in seconds.items()} | {"output_mismatches": mismatches}


async def measure_open_session(pool: ExecutorPool, count: int) -> dict[str, float]:
    seconds, sessions = [], []
    for _ in range(count):
        started = time.perf_counter()
        sessions.append(await pool.open_session())
        seconds.append(time.perf_counter() - started)
    await asyncio.gather(*(session.close() for session in sessions))
    return summary(seconds)


async def measure_throughput(pool: ExecutorPool, sessions_count: int, cells: int) -> dict:
    sessions = [await pool.open_session() for _ in range(sessions_count)]
    progress = tqdm(total=cells, desc=f"throughput ({sessions_count} sessions)", unit="cell")
    next_index = 10_000  # coefficients not seen by the latency phase

    async def candidate(session) -> None:
        nonlocal next_index
        while next_index < 10_000 + cells:
            next_index += 1
            await session.run(cell_code(next_index), timeout_s=60)
            progress.update()

    started = time.perf_counter()
    await asyncio.gather(*(candidate(session) for session in sessions))
    elapsed = time.perf_counter() - started
    progress.close()
    await asyncio.gather(*(session.close() for session in sessions))
    rate = cells / elapsed
    return {"cells": cells, "sessions": sessions_count, "slots": pool.max_concurrent_cells, "cells_per_s": rate}


async def main(args: argparse.Namespace) -> dict:
    async with ExecutorPool() as pool:  # one cell slot per CPU core
        latency = await measure_latency(pool, args.repeats)
        open_session = await measure_open_session(pool, args.repeats)
        sessions_count = args.sessions or 4 * pool.max_concurrent_cells
        throughput = await measure_throughput(pool, sessions_count, args.cells)
    speedups = {name: latency[f"spawn_{name}"]["median_ms"] / latency[f"warm_{name}"]["median_ms"] for name in WORKLOADS}
    return {
        "repeats": args.repeats,
        "latency": latency,
        "speedups": speedups,
        "open_session": open_session,
        "throughput": throughput,
    }


def print_report(results: dict) -> None:
    latency = results["latency"]
    print(f"\n{results['repeats']} interleaved repeats of each cell:")
    for name, template in WORKLOADS.items():
        print(f"  {name:8} {template!r}")
    print(f"{'':34}{'median ms':>11}{'p90 ms':>10}{'min ms':>10}")
    rows = [(f"{name}, {label}", latency[f"{mode}_{name}"]) for name in WORKLOADS
            for mode, label in (("warm", "warm session"), ("spawn", "spawn per cell"))]
    for label, row in rows + [("open_session()", results["open_session"])]:
        print(f"{label:34}{row['median_ms']:11.1f}{row['p90_ms']:10.1f}{row['min_ms']:10.1f}")
    for name, speedup in results["speedups"].items():
        target = ""
        if name == "typical":
            target = f" ({'meets' if speedup >= TARGET_SPEEDUP else 'MISSES'} the {TARGET_SPEEDUP:.0f}x target)"
        print(f"warm executor / spawn per cell, {name} cell: {speedup:.1f}x faster (medians){target}")
    if latency["output_mismatches"]:
        print(f"WARNING: {latency['output_mismatches']} cells printed different output in the two modes")
    throughput = results["throughput"]
    print(
        f"throughput: {throughput['cells_per_s']:.1f} cells/s ({throughput['cells']} cells, "
        f"{throughput['sessions']} sessions, {throughput['slots']} concurrent slots, {os.cpu_count()} CPUs)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20, help="interleaved warm/spawn pairs (default 20)")
    parser.add_argument("--cells", type=int, default=400, help="cells for the throughput phase (default 400)")
    parser.add_argument("--sessions", type=int, default=0, help="sessions for throughput (default 4 per slot)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    arguments = parser.parse_args()
    report = asyncio.run(main(arguments))
    print_report(report)
    if arguments.json:
        arguments.json.write_text(json.dumps(report, indent=2) + "\n")
