"""``python -m eval compare RUN_A RUN_B``: two runs side by side, and the problems whose
verdict flipped between them."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from eval.runs import read_complete_lines

ROWS = (
    ("accuracy", "accuracy (submitted answer)", "pct"),
    ("accuracy_full_vote", "accuracy (vote over all)", "pct"),
    ("accuracy_seed_std", "seed-to-seed std", "num"),
    ("fallback_rate", "answered by fallback", "pct"),
    ("early_stop_rate", "stopped early", "pct"),
    ("early_stop_time_saved", "time early stop saves", "pct"),
    ("time_per_problem_s", "seconds per problem", "num"),
    ("tokens_per_problem", "tokens per problem", "num"),
    ("code_cells_per_candidate", "code cells per candidate", "num"),
    ("code_error_rate", "code error rate", "pct"),
    ("code_timeout_rate", "code timeout rate", "pct"),
)


def load_run(run: Path) -> tuple[dict, dict[str, float]]:
    """A run's summary and, per problem, the share of its seeds that got it right."""
    summary_path = run / "summary.json"
    if not summary_path.is_file():
        raise FileNotFoundError(f"{run} is not a finished run directory (no summary.json)")
    summary = json.loads(summary_path.read_text())
    per_problem: dict[str, list[bool]] = defaultdict(list)
    for record in read_complete_lines(run / "problems.jsonl"):
        per_problem[record["problem_id"]].append(record["correct"])
    return summary, {pid: sum(v) / len(v) for pid, v in per_problem.items()}


def _fmt(value, kind: str) -> str:
    if value is None or value != value:
        return "n/a"
    return f"{100 * value:.1f}%" if kind == "pct" else f"{value:.2f}"


def compare_runs(run_a: Path, run_b: Path) -> str:
    (sum_a, right_a), (sum_b, right_b) = load_run(run_a), load_run(run_b)
    width = max(len(str(run_a)), len(str(run_b)), 12)
    lines = [f"{'':30}{str(run_a):>{width}}  {str(run_b):>{width}}"]
    lines.append(f"{'split':30}{sum_a['split']:>{width}}  {sum_b['split']:>{width}}")
    for key, label, kind in ROWS:
        lines.append(f"{label:30}{_fmt(sum_a.get(key), kind):>{width}}  {_fmt(sum_b.get(key), kind):>{width}}")
    for name in ("maj@k", "pass@k"):
        for k in sorted(set(sum_a["curves"][name]) | set(sum_b["curves"][name]), key=int):
            a, b = sum_a["curves"][name].get(k), sum_b["curves"][name].get(k)
            lines.append(f"{f'{name} k={k}':30}{_fmt(a, 'pct'):>{width}}  {_fmt(b, 'pct'):>{width}}")
    shared = sorted(set(right_a) & set(right_b))
    # Right means right in at least half of the run's seeds.
    a_only = [pid for pid in shared if right_a[pid] >= 0.5 > right_b[pid]]
    b_only = [pid for pid in shared if right_b[pid] >= 0.5 > right_a[pid]]
    lines += ["", f"{len(shared)} problems in both runs; verdict flips: {len(a_only) + len(b_only)}",
              f"right in A only ({len(a_only)}): {', '.join(a_only) or '-'}",
              f"right in B only ({len(b_only)}): {', '.join(b_only) or '-'}"]
    return "\n".join(lines)
