"""Benchmark ``python -m eval select`` end to end on synthetic samples: 500 problems x 20
candidates (10,000 samples), target under a minute on 2 cores.

The samples table (Parquet, no ``correct`` column: every answer is graded, on the grader's integer
fast path) is made with a fixed seed so that it looks like a reasoning model's: per-problem
difficulty from a Beta distribution, wrong answers spread over a few distractors, some candidates
with no answer; right candidates shorter, more confident, more often with clean code and better
reward-model scores than wrong ones, with wide overlap. The timed command is the whole selection
lab: loading and grading, every method (majority, entropy, combined, shortest, code-verified,
reward:best, reward:sum) at k = 1, 2, 4, 8, 16, 20 with bootstrap intervals, competition scoring,
early-stop replay, run simulation, plots and report.

    python -m eval.benchmarks.selection [--problems 500] [--samples 20] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

TARGET_SECONDS = 60.0


def synthetic_table(problems: int, samples: int, seed: int = 0) -> pl.DataFrame:
    """One row per candidate, in the plain samples-table format (README)."""
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {c: [] for c in ("problem_id", "gold", "answer", "tokens", "finish_s", "order",
                                             "entropy", "tail_entropy", "code_ok", "reward")}
    for problem in range(problems):
        gold = int(rng.integers(0, 100_000))
        p_right = rng.beta(1.2, 0.8)
        distractors = [gold + int(d) for d in rng.integers(1, 1000, size=4)]
        weights = rng.dirichlet(np.full(4, 0.7))
        for order in range(samples):
            outcome = rng.random()
            right = outcome < p_right
            answered = right or outcome < 0.95
            answer = gold if right else int(rng.choice(distractors, p=weights))
            tokens = int(rng.lognormal(np.log(3000 if right else 4500), 0.5))
            rows["problem_id"].append(f"p{problem:04d}")
            rows["gold"].append(str(gold))
            rows["answer"].append(str(answer) if answered else None)
            rows["tokens"].append(tokens)
            rows["finish_s"].append(round(tokens / 40 + float(rng.exponential(5)), 3))
            rows["order"].append(order)
            rows["entropy"].append(max(0.02, float(rng.normal(0.40 if right else 0.55, 0.12))))
            rows["tail_entropy"].append(max(0.02, float(rng.normal(0.30 if right else 0.50, 0.15))))
            ran_code = rng.random() < 0.9
            rows["code_ok"].append(bool(rng.random() < (0.7 if right else 0.5)) if ran_code else None)
            rows["reward"].append(float(rng.normal(1.0 if right else -0.5, 1.0)))
    return pl.DataFrame(rows)


def cpu_seconds() -> float:
    """User and system CPU time of this process and its finished children (the replay's workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main(argv: list[str] | None = None) -> dict:
    from eval.__main__ import main as eval_main

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=500)
    parser.add_argument("--samples", type=int, default=20, help="candidates per problem")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "synthetic.parquet"
        synthetic_table(args.problems, args.samples).write_parquet(table)
        out = Path(tmp) / "selection"
        started, cpu_before = time.perf_counter(), cpu_seconds()
        code = eval_main(["select", "--table", str(table), "--out", str(out)])
        elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu_before
        if code != 0:
            raise SystemExit(f"eval select failed (exit {code})")
        report = json.loads((out / "selection.json").read_text())
    result = {"problems": args.problems, "samples_per_problem": args.samples,
              "candidates": args.problems * args.samples, "elapsed_s": round(elapsed, 2), "cpu_s": round(cpu, 2),
              "methods": sorted(report["accuracy"]), "ks": report["ks"]}
    print(f"eval select over {result['candidates']} synthetic candidates ({args.problems} problems x "
          f"{args.samples}): {elapsed:.1f} s (target: under {TARGET_SECONDS:.0f} s on 2 cores); CPU {cpu:.1f} s "
          "(this process and its replay workers: what a machine shared with other work stretches)")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
