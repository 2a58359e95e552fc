"""Majority vote over candidate answers, and the early-stop rules that end a problem
before every candidate has finished.

Answers arrive in finish order (candidates that finished at the same time in candidate-index
order; ``kit.sctir.ProblemRun`` sorts them so). The vote counts valid answers; ties go to the answer
whose first voter has the lowest candidate index, so the same set of finished candidates
always gives the same answer whatever order they finished in.

Early-stop rules (config strings, any of which may fire):

- ``decided``: the leader cannot be overtaken by the candidates still running — stopping
  never changes the answer the full vote would give (barring ties).
- ``K/M``: some answer has K votes among the first M valid answers (``4/4``: the first
  four agree; ``5/7``: five of the first seven).
- ``last:K/M``: some answer has K votes among the last M valid answers.

The AIMO-2 front-runners' combination is ``["4/4", "5/7", "6/9", "last:4/5"]``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class Vote:
    """One finished candidate's valid answer."""

    candidate: int
    answer: str


@dataclass(frozen=True)
class VoteResult:
    answer: str | None
    table: dict[str, int]  # answer -> votes, most votes first (ties in tie-break order)


def majority_vote(votes: list[Vote]) -> VoteResult:
    counts = Counter(v.answer for v in votes)
    first_voter: dict[str, int] = {}
    for v in votes:
        first_voter[v.answer] = min(v.candidate, first_voter.get(v.answer, v.candidate))
    ranked = sorted(counts, key=lambda a: (-counts[a], first_voter[a]))
    return VoteResult(answer=ranked[0] if ranked else None, table={a: counts[a] for a in ranked})


_RULE = re.compile(r"^(last:)?(\d+)/(\d+)$")


@dataclass(frozen=True)
class EarlyStopRule:
    kind: str  # "decided", "first" or "last"
    k: int = 0
    m: int = 0

    @classmethod
    def parse(cls, spec: str) -> EarlyStopRule:
        spec = spec.strip()
        if spec == "decided":
            return cls("decided")
        match = _RULE.match(spec)
        if not match:
            raise ValueError(f"early-stop rule {spec!r}: expected 'decided', 'K/M' or 'last:K/M'")
        k, m = int(match.group(2)), int(match.group(3))
        if not 1 <= k <= m:
            raise ValueError(f"early-stop rule {spec!r}: need 1 <= K <= M")
        return cls("last" if match.group(1) else "first", k, m)

    def __str__(self) -> str:
        return {"decided": "decided", "first": f"{self.k}/{self.m}", "last": f"last:{self.k}/{self.m}"}[self.kind]

    def fires(self, answers: list[str], pending: int) -> bool:
        """Whether to stop, given the valid answers in finish order and how many
        candidates are still running."""
        if not answers:
            return False
        if self.kind == "decided":
            top = Counter(answers).most_common(2)
            second = top[1][1] if len(top) > 1 else 0
            return top[0][1] - second > pending
        window = answers[: self.m] if self.kind == "first" else answers[-self.m :]
        return Counter(window).most_common(1)[0][1] >= self.k


def parse_rules(specs: list[str]) -> list[EarlyStopRule]:
    return [EarlyStopRule.parse(s) for s in specs]


def first_firing_rule(rules: list[EarlyStopRule], answers: list[str], pending: int) -> EarlyStopRule | None:
    return next((r for r in rules if r.fires(answers, pending)), None)
