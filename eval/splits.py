"""Validation splits: the vendored ones by name (see eval/data/README.md), any local
JSONL/CSV/Parquet file with problem and answer columns, or a Hugging Face dataset id when a
hub is reachable. Bad files are refused with the file, line and reason."""

from __future__ import annotations

from collections.abc import Iterator
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
        rows, profile = iter_rows(DATA_DIR / split.file), split.profile
    elif Path(name_or_path).exists():
        rows, profile = iter_rows(name_or_path), "free"
    elif is_hub_id(name_or_path):
        rows, profile = hub_rows(name_or_path, limit=limit), "free"
    else:
        raise FileNotFoundError(f"split {name_or_path!r}: not a known split {sorted(SPLITS)}, a file "
                                "nor a hub dataset id")
    problems = [_problem_from_row(row, where, i) for i, (where, row) in enumerate(rows)]
    problems = _check_ids(problems, name_or_path)
    return (problems[:limit] if limit else problems), profile


def is_hub_id(source: str) -> bool:
    """Whether ``source`` names a Hugging Face dataset (``owner/name``) rather than a local file:
    no such path, one slash, no leading dot and no problem-file suffix (a missing
    ``data/x.jsonl`` is a missing file, not a dataset)."""
    path = Path(source)
    return (not path.exists() and source.count("/") == 1 and not source.startswith(".")
            and path.suffix not in (".jsonl", ".csv", ".parquet"))


def hub_rows(dataset_id: str, split: str | None = None, limit: int | None = None) -> Iterator[tuple[str, dict]]:
    """(where, row) for the first ``limit`` rows of a Hugging Face dataset's ``split`` (None: its
    test split, else its first). Needs the `datasets` package and a reachable hub; neither exists
    on Kaggle's offline notebooks. The splits and the training data (train.chats) both load
    hub datasets through here."""
    try:
        import datasets
    except ImportError:
        raise ImportError(f"{dataset_id!r} is not a local file; loading it from the Hugging Face hub needs "
                          "`pip install datasets` (and network access)") from None
    try:
        loaded = datasets.load_dataset(dataset_id)
    except Exception as exc:  # offline, unknown id, gated: all reported the same way, the cause chained
        raise RuntimeError(f"could not load {dataset_id!r} from the Hugging Face hub ({type(exc).__name__}: "
                           f"{exc}); offline runs need a local .jsonl") from exc
    name = split or ("test" if "test" in loaded else next(iter(loaded)))
    if name not in loaded:
        raise ValueError(f"{dataset_id!r} has no split {name!r} (splits: {sorted(loaded)})")
    rows = loaded[name].select(range(min(limit, len(loaded[name])))) if limit else loaded[name]
    for index, row in enumerate(rows):
        yield f"{dataset_id}[{name}] row {index}", dict(row)
