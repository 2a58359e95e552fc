"""Plain samples tables: one row per sample, in JSONL, CSV or Parquet, as any notebook's logs can
produce (README: "Choosing a selection method from your own samples").

Columns (only the first three are required):

- ``problem_id``, ``gold`` (the gold answer), ``answer`` (the answer the sample votes; empty or
  null: it gave none). Answers vote as equal when their text is equal (surrounding whitespace
  off), so write them in one normal form, as the kit's answer rule does.
- ``correct`` (true/false or 1/0): the answer is right. Missing (or null in a row): the answer is
  graded against ``gold`` by :class:`eval.grading.grader.Grader`.
- ``tokens`` (generated tokens), ``finish_s`` (seconds from the problem's start to the sample's
  end: its finish order, for early stop and run simulation), ``entropy`` (mean token entropy),
  ``tail_entropy``, ``code_ok`` (true: every code cell ran without error; false: one failed; null:
  it ran none).
- ``order`` (its candidate index; default: the row order), ``seed`` (the draw it belongs to: rows
  of one problem are ordered by seed, then order, and numbered in that order), ``split`` (default:
  the file's name without its suffix).
- Any other numeric column is a per-candidate score (a reward model's, ...): the selection lab
  replays a vote weighted by it. Other non-numeric columns are ignored (and logged).

A table's problems are never pooled with another source's: a table has no sampling settings to
check (:mod:`eval.selection.loading`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import polars as pl

from eval.grading.grader import Grader
from eval.selection.draws import Draw, Source
from eval.selection.samples import Sample

log = logging.getLogger(__name__)

REQUIRED = ("problem_id", "gold", "answer")
TEXT_COLUMNS = ("problem_id", "gold", "answer", "split")
FLAG_COLUMNS = ("correct", "code_ok")
NUMBER_COLUMNS = ("tokens", "finish_s", "order", "seed", "entropy", "tail_entropy")
RESERVED = (*TEXT_COLUMNS, *FLAG_COLUMNS, *NUMBER_COLUMNS)
FORMATS = (".jsonl", ".ndjson", ".csv", ".parquet")


def read_jsonl(path: Path) -> pl.DataFrame:
    """A JSONL table; the text columns as text whatever JSON type a row gave them (gold 42 is "42")."""
    rows = []
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{line_no}: not JSON ({exc})") from exc
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{line_no}: expected an object per line")
            rows.append({k: str(v) if k in TEXT_COLUMNS and v is not None else v for k, v in row.items()})
    return pl.DataFrame(rows, infer_schema_length=None)


def read_frame(path: Path) -> pl.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"samples table {path} not found")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        frame = read_jsonl(path)
    elif suffix == ".csv":
        header = pl.read_csv(path, n_rows=0).columns
        frame = pl.read_csv(path, infer_schema_length=None,
                            schema_overrides={c: pl.String for c in TEXT_COLUMNS if c in header})
    elif suffix == ".parquet":
        frame = pl.read_parquet(path)
    else:
        raise ValueError(f"samples table {path}: unknown format {suffix!r} (one of {list(FORMATS)})")
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"samples table {path}: lacks column(s) {missing} (needs {list(REQUIRED)})")
    frame = frame.with_columns(pl.col(c).cast(pl.String) for c in TEXT_COLUMNS if c in frame.columns)
    for column in ("problem_id", "gold"):
        check_text(frame[column].to_list(), column, path)
    return frame


def flag_values(frame: pl.DataFrame, column: str, path: Path) -> list[bool | None]:
    """A true/false column (Boolean, or integers 0/1) as booleans, nulls kept."""
    if column not in frame.columns:
        return [None] * frame.height
    series = frame[column]
    if series.dtype == pl.Boolean:
        return series.to_list()
    if series.dtype.is_integer() and set(series.drop_nulls().unique().to_list()) <= {0, 1}:
        return [None if v is None else bool(v) for v in series.to_list()]
    raise ValueError(f"samples table {path}: column {column} must be true/false or 1/0 (got {series.dtype})")


def number_values(frame: pl.DataFrame, column: str, path: Path) -> list[float | None]:
    if column not in frame.columns:
        return [None] * frame.height
    series = frame[column]
    if not series.dtype.is_numeric():
        raise ValueError(f"samples table {path}: column {column} must be numeric (got {series.dtype})")
    return series.to_list()


def score_columns(frame: pl.DataFrame, path: Path) -> list[str]:
    other = [c for c in frame.columns if c not in RESERVED]
    ignored = [c for c in other if not frame[c].dtype.is_numeric()]
    if ignored:
        log.info("samples table %s: non-numeric columns %s ignored", path, ignored)
    return [c for c in other if frame[c].dtype.is_numeric()]


def check_text(values: list[str | None], column: str, path: Path) -> None:
    for row, value in enumerate(values):
        if value is None or not value.strip():
            raise ValueError(f"samples table {path}: row {row} has no {column}")


def table_draws(path: Path, frame: pl.DataFrame, correct: list[bool]) -> tuple[Source, list[Draw]]:
    """A table's rows as one draw per (split, problem), ``correct`` given for every row."""
    problem_ids, golds = frame["problem_id"].to_list(), frame["gold"].to_list()
    splits = frame["split"].to_list() if "split" in frame.columns else [path.stem] * frame.height
    answers = [None if a is None or not a.strip() else a.strip() for a in frame["answer"].to_list()]
    code_ok = flag_values(frame, "code_ok", path)
    numbers = {c: number_values(frame, c, path) for c in NUMBER_COLUMNS}
    scores = {c: frame[c].to_list() for c in score_columns(frame, path)}
    for column in ("order", "seed"):
        if column in frame.columns and frame[column].null_count():
            raise ValueError(f"samples table {path}: column {column} has empty rows")
    rows_of: dict[tuple[str, str], list[int]] = {}
    for row in range(frame.height):
        rows_of.setdefault((splits[row] or path.stem, problem_ids[row].strip()), []).append(row)
    draws = []
    for (split, problem_id), rows in rows_of.items():
        gold = {golds[r].strip() for r in rows}
        if len(gold) > 1:
            raise ValueError(f"samples table {path}: problem {problem_id!r} has different gold answers {sorted(gold)}")
        keys = {r: (numbers["seed"][r] or 0, r if numbers["order"][r] is None else numbers["order"][r]) for r in rows}
        if len(set(keys.values())) != len(rows):
            raise ValueError(f"samples table {path}: problem {problem_id!r} has two rows with the same (seed, order)")
        ordered = sorted(rows, key=keys.__getitem__)
        # A sample without an answer is wrong whatever its verdict says (it cannot be submitted).
        samples = [Sample(answer=answers[r], correct=correct[r] and answers[r] is not None, tokens=int(numbers["tokens"][r] or 0),
                          finish_s=numbers["finish_s"][r], order=rank, mean_entropy=numbers["entropy"][r],
                          tail_entropy=numbers["tail_entropy"][r], code_ok=code_ok[r],
                          scores={c: float(v[r]) for c, v in scores.items() if v[r] is not None})
                   for rank, r in enumerate(ordered)]
        draws.append(Draw(str(path), split, problem_id, gold.pop(), samples))
    splits_seen = sorted({d.split for d in draws})
    source = Source(str(path), "table", ",".join(splits_seen), problems=len(draws), samples=frame.height)
    return source, draws


def read_tables(paths: list[Path]) -> tuple[list[Source], list[Draw]]:
    """The draws of every table; answers without a ``correct`` verdict graded in one batch."""
    frames = [(path, read_frame(path)) for path in paths]
    verdicts = [flag_values(frame, "correct", path) for path, frame in frames]
    pairs = [(gold.strip(), answer.strip() if answer else None)
             for (_, frame), flags in zip(frames, verdicts)
             for gold, answer, flag in zip(frame["gold"].to_list(), frame["answer"].to_list(), flags) if flag is None]
    if pairs:
        with Grader() as grader:
            grades = iter(grader.grade_many(pairs, progress=True))
        verdicts = [[next(grades).correct if flag is None else flag for flag in flags] for flags in verdicts]
    sources, draws = [], []
    for (path, frame), correct in zip(frames, verdicts):
        source, table = table_draws(path, frame, correct)
        sources.append(source)
        draws.extend(table)
    return sources, draws
