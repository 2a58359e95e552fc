"""Validation splits: the vendored ones by name (see eval/data/README.md), any local
JSONL/CSV/Parquet file with problem and answer columns, or a Hugging Face dataset id when a
hub is reachable. Bad files are refused with the file, line and reason."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kit.problem_io import iter_rows, problem_text, row_id

DATA_DIR = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class Split:
    file: str
    profile: str  # the answer rule candidates vote under (kit.answers.PROFILES)


SPLITS = {
    "aime": Split("aime.jsonl", "integer"),
    "amc": Split("amc.jsonl", "integer"),
    "amc23": Split("amc23.jsonl", "integer"),
    "math-l4": Split("math_l4.jsonl", "integer"),
    "math-l5": Split("math_l5.jsonl", "integer"),
    "math500": Split("math500.jsonl", "free"),
    "gsm8k": Split("gsm8k_test.jsonl", "integer"),
}


@dataclass(frozen=True)
class EvalProblem:
    id: str
    problem: str
    answer: str
    level: str | None = None
    subject: str | None = None


def _problem_from_row(row: dict, where: str, index: int) -> EvalProblem:
    text = problem_text(row, where)
    if "answer" not in row:
        raise ValueError(f"{where}: no 'answer' column (columns: {sorted(row)})")
    answer = row["answer"]
    if answer is None or not str(answer).strip():
        raise ValueError(f"{where}: empty answer")
    level = row.get("level")
    subject = row.get("subject") or row.get("type")
    return EvalProblem(row_id(row, index), text, str(answer).strip(),
                       None if level is None else str(level), None if subject is None else str(subject))


def _check_ids(problems: list[EvalProblem], source: str) -> list[EvalProblem]:
    if not problems:
        raise ValueError(f"split {source} has no problems")
    seen: set[str] = set()
    for p in problems:
        if p.id in seen:
            raise ValueError(f"split {source}: duplicate id {p.id!r}")
        seen.add(p.id)
    return problems


def load_split(name_or_path: str, limit: int | None = None) -> tuple[list[EvalProblem], str]:
    """The problems of a split and its default answer profile."""
    if name_or_path in SPLITS:
        split = SPLITS[name_or_path]
        path, profile = DATA_DIR / split.file, split.profile
    else:
        path, profile = Path(name_or_path), "free"
        if not path.exists() and "/" in name_or_path and not name_or_path.startswith((".", "/")):
            return _load_hub_dataset(name_or_path, limit), profile
        if not path.exists():
            raise FileNotFoundError(f"split {name_or_path!r}: not a known split {sorted(SPLITS)} nor a file")
    problems = [_problem_from_row(row, where, i) for i, (where, row) in enumerate(iter_rows(path))]
    problems = _check_ids(problems, str(path))
    return (problems[:limit] if limit else problems), profile


def _load_hub_dataset(dataset_id: str, limit: int | None) -> list[EvalProblem]:
    """A Hugging Face dataset's test split (train if there is none). Needs the `datasets`
    package and a reachable hub; neither exists on Kaggle's offline notebooks."""
    try:
        import datasets
    except ImportError:
        raise FileNotFoundError(f"split {dataset_id!r}: no such file, and loading it from a hub needs "
                                "`pip install datasets` and network access") from None
    loaded = datasets.load_dataset(dataset_id)
    name = "test" if "test" in loaded else next(iter(loaded))
    rows = loaded[name].select(range(min(limit, len(loaded[name])))) if limit else loaded[name]
    problems = [_problem_from_row(dict(row), f"{dataset_id}[{name}][{i}]", i) for i, row in enumerate(rows)]
    return _check_ids(problems, dataset_id)
