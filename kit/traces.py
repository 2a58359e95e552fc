"""What ``kit solve`` writes: trace records (JSON-ready candidates and results), the answers
CSV and the one-problem summary. Reading problem files is ``kit.problem_io``'s, which stays
free of the SC-TIR stack so that reading a JSONL file does not import the sandbox.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

from kit.sctir import Candidate, ProblemResult


def candidate_record(candidate: Candidate) -> dict:
    """A candidate's trace and statistics, JSON-ready (token ids left out: the text has them)."""
    record = dataclasses.asdict(candidate)
    del record["token_ids"]
    return record


def result_record(result: ProblemResult) -> dict:
    """Everything about a solved problem, JSON-ready (candidate traces included)."""
    record = dataclasses.asdict(result)
    record["candidates"] = [candidate_record(c) for c in result.candidates]
    return record


def write_answers(path: str | Path, rows: list[tuple[str, str]]) -> None:
    with Path(path).open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "answer"])
        writer.writerows(rows)


def format_result(result: ProblemResult) -> str:
    """A short human summary: answer, vote table (each answer's weight too under the entropy and
    combined votes), time, candidate outcomes."""
    c = result.candidates
    counts: dict[str, int] = {}
    for cand in c:
        key = cand.status if cand.status != "pruned" else f"pruned:{cand.reason}"
        counts[key] = counts.get(key, 0) + 1
    vote = result.vote
    votes = ", ".join(f"{a}: {n}" + (f" (w {vote.weights[a]:.3g})" if vote.method != "majority" else "")
                      for a, n in vote.table.items()) or "none"
    cells = sum(len(x.cells) for x in c)
    tokens = sum(x.generated_tokens for x in c)
    lines = [
        f"answer: {result.answer}" + ("  (fallback: no candidate gave a valid answer)" if result.used_fallback else "")
        + (f"  (picked by GenSelect; the vote said {result.vote.answer})" if result.selected_by == "genselect" else ""),
        f"votes: {votes}" + (f"  ({vote.method} vote)" if vote.method != "majority" else ""),
        f"time: {result.elapsed_s:.1f} s of {result.time_limit_s:.0f} s; stop: {result.stop_reason}",
        f"candidates: {len(c)} ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}); "
        f"code cells: {cells}; generated tokens: {tokens}",
    ]
    return "\n".join(lines)
