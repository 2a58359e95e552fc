"""Reading problem files (CSV or JSONL) and writing answers and traces.

A problem file has a ``problem`` column (``question`` is accepted too) and optionally an
``id``; rows without an id are numbered. Errors name the file, the line and the reason.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

from kit.sctir import ProblemResult

PROBLEM_KEYS = ("problem", "question")


@dataclasses.dataclass
class Problem:
    id: str
    problem: str
    answer: str | None = None  # the reference answer, when the file has one


def _problem_from_row(row: dict, where: str, number: int) -> Problem:
    text = next((row[k] for k in PROBLEM_KEYS if k in row), None)
    if text is None:
        raise ValueError(f"{where}: no 'problem' column (columns: {sorted(row)})")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{where}: empty problem")
    answer = row.get("answer")
    return Problem(str(row.get("id") or number), text, None if answer is None else str(answer))


def read_problems(path: str | Path, limit: int | None = None) -> list[Problem]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"problem file {path} does not exist")
    problems: list[Problem] = []
    if path.suffix == ".jsonl":
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{path}:{line_no}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{where}: expected a JSON object")
            problems.append(_problem_from_row(row, where, len(problems)))
    elif path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                problems.append(_problem_from_row(row, f"{path}:{len(problems) + 2}", len(problems)))
    else:
        raise ValueError(f"problem file {path}: expected .csv or .jsonl")
    if not problems:
        raise ValueError(f"problem file {path} has no problems")
    ids = [p.id for p in problems]
    if len(set(ids)) != len(ids):
        raise ValueError(f"problem file {path}: duplicate ids")
    return problems[:limit] if limit else problems


def result_record(result: ProblemResult) -> dict:
    """Everything about a solved problem, JSON-ready (candidate traces included)."""
    return dataclasses.asdict(result)


def write_answers(path: str | Path, rows: list[tuple[str, str]]) -> None:
    with Path(path).open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "answer"])
        writer.writerows(rows)


def format_result(result: ProblemResult) -> str:
    """A short human summary: answer, vote table, time, candidate outcomes."""
    c = result.candidates
    counts: dict[str, int] = {}
    for cand in c:
        key = cand.status if cand.status != "pruned" else f"pruned:{cand.reason}"
        counts[key] = counts.get(key, 0) + 1
    votes = ", ".join(f"{a}: {n}" for a, n in result.vote.table.items()) or "none"
    cells = sum(len(x.cells) for x in c)
    tokens = sum(x.generated_tokens for x in c)
    lines = [
        f"answer: {result.answer}" + ("  (fallback: no candidate gave a valid answer)" if result.used_fallback else ""),
        f"votes: {votes}",
        f"time: {result.elapsed_s:.1f} s of {result.time_limit_s:.0f} s; stop: {result.stop_reason}",
        f"candidates: {len(c)} ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}); "
        f"code cells: {cells}; generated tokens: {tokens}",
    ]
    return "\n".join(lines)
