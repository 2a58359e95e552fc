"""What the loaders hand the pool: draws of a problem's candidates, and where they came from."""

from __future__ import annotations

from dataclasses import dataclass, field

from eval.selection.samples import Sample


@dataclass(frozen=True)
class Source:
    """One run directory or table that went into the pool, as the report describes it."""

    path: str
    kind: str  # "run" or "table"
    split: str
    problems: int
    samples: int
    seeds: tuple[int, ...] = ()
    settings: dict = field(default_factory=dict)  # the run's SAMPLING_SETTINGS (runs only)
    num_samples: int | None = None  # the run's configured candidates per problem (runs only)


@dataclass(frozen=True)
class Draw:
    """One draw of a problem's candidates: a (seed, problem) of a run, or a table's rows of a problem."""

    source: str
    split: str
    problem_id: str
    gold: str
    samples: list[Sample]
    elapsed_s: float | None = None
    seed: int | None = None  # a run's sampling seed (tables: None)
