"""The samples the selection lab replays: one problem's candidates, each reduced to what a
selection method, an early-stop rule or a time policy can use, read from saved eval runs
(``RUN/samples.jsonl`` + ``RUN/problems.jsonl``) or from a plain samples table (README:
"Choosing a selection method from your own samples").
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Sample:
    """One candidate of a problem, graded."""

    answer: str | None  # the answer it votes (None: it gave none)
    correct: bool  # the answer is right (graded against the gold answer)
    tokens: int = 0  # tokens it generated
    finish_s: float | None = None  # when it ended, since its problem started (its recorded finish order)
    order: int = 0  # its candidate index (ties in finish time, tie-breaks in votes)
    mean_entropy: float | None = None  # mean token entropy over all its tokens (logprobs on)
    tail_entropy: float | None = None  # ... over its last vote.tail_tokens tokens
    code_ok: bool | None = None  # it ran code and every cell ran without error (None: it ran none)
    scores: dict[str, float] = field(default_factory=dict)  # per-candidate score columns (a reward model's ...)


@dataclass(frozen=True)
class ProblemSamples:
    """A problem's candidates, pooled over the runs that share its sampling settings."""

    problem_id: str
    gold: str
    split: str = ""
    samples: tuple[Sample, ...] = ()
    elapsed_s: float | None = None  # the recorded wall time of the problem (all candidates), when known
