"""Reading problem files (JSONL, CSV or Parquet): rows, their ids and problem texts.

A problem file has a ``problem`` column (``question`` is accepted too) and optionally an
``id``; rows without an id are numbered. Errors name the file, the line and the reason.
The evaluation splits and the training data read rows through this module, so it imports
nothing of the SC-TIR stack (writing traces and answers is ``kit.traces``'s).
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

PROBLEM_KEYS = ("problem", "question")


@dataclasses.dataclass
class Problem:
    id: str
    problem: str
    answer: str | None = None  # the reference answer, when the file has one


def iter_rows(path: str | Path) -> Iterator[tuple[str, dict]]:
    """(where, row) for each row of a .jsonl, .csv or .parquet file, ``where`` being
    ``file:line`` (``file:row N`` for Parquet) for error messages."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file {path} does not exist")
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
            yield where, row
    elif path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            for row_no, row in enumerate(csv.DictReader(f), start=2):
                yield f"{path}:{row_no}", row
    elif path.suffix == ".parquet":
        import pyarrow.parquet

        for row_no, row in enumerate(pyarrow.parquet.read_table(path).to_pylist(), start=1):
            yield f"{path}:row {row_no}", row
    else:
        raise ValueError(f"file {path}: expected .jsonl, .csv or .parquet")


def row_id(row: dict, index: int) -> str:
    """A row's id: its ``id`` column, else its position in the file (0, 1, ...). The kit, the
    evaluation splits and the training data all id rows this way, so their ids match."""
    return str(row.get("id") or index)


def problem_text(row: dict, where: str) -> str:
    text = next((row[k] for k in PROBLEM_KEYS if k in row), None)
    if text is None:
        raise ValueError(f"{where}: no 'problem' column (columns: {sorted(row)})")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{where}: empty problem")
    return text


def read_problems(path: str | Path, limit: int | None = None) -> list[Problem]:
    problems: list[Problem] = []
    for where, row in iter_rows(path):
        answer = row.get("answer")
        problems.append(Problem(row_id(row, len(problems)), problem_text(row, where),
                                None if answer is None else str(answer)))
    if not problems:
        raise ValueError(f"problem file {path} has no problems")
    ids = [p.id for p in problems]
    if len(set(ids)) != len(ids):
        raise ValueError(f"problem file {path}: duplicate ids")
    return problems[:limit] if limit else problems
