"""The vote that turns the finished candidates' answers into one, and the early-stop rules that
end a problem before every candidate has finished.

Answers arrive in finish order (candidates that finished at the same time in candidate-index
order; ``kit.sctir.ProblemRun`` sorts them so). Only valid answers vote. ``cast_vote`` weighs
each answer by the config's method (``VoteConfig.method``):

- ``majority``: its number of votes (self-consistency; Numina's AIMO-1 SC-TIR).
- ``entropy``: the sum over its candidates of ``1 / mean_entropy``, a candidate's mean token
  entropy over all its tokens: confident candidates weigh more (AIMO-3's 1st place).
- ``combined``: its vote share ``count / votes`` plus ``confidence_weight`` times the mean over
  its candidates of ``exp(-tail_entropy)``, the confidence of a candidate's last ``tail_tokens``
  tokens (AIMO-3's 2nd place).
- ``rm``: an outcome reward model's scores of its candidates' traces (``kit.reward``):
  ``rm_aggregate: best`` ranks answers by their best-scored candidate (Qwen2.5-Math's RM@k),
  ``sum`` by the sum of ``sigmoid(score)`` (a score-weighted vote).

The entropies are ``kit.confidence``'s, from the top-k logprobs; a vote that lacks the one its
method needs (logprobs off, a scripted engine) is counted by majority instead, with a warning.
Ties (equal weight) go to the answer whose first voter has the lowest candidate index, and the
weights are exactly rounded sums (``math.fsum``), so the same set of finished candidates always
gives the same answer whatever order they finished in.

Early-stop rules (config strings, any of which may fire):

- ``decided``: the leader cannot be overtaken by the candidates still running — stopping
  never changes the answer the full vote would give (barring ties).
- ``K/M``: some answer has K votes among the first M valid answers (``4/4``: the first
  four agree; ``5/7``: five of the first seven).
- ``last:K/M``: some answer has K votes among the last M valid answers.

The AIMO-2 front-runners' combination is ``["4/4", "5/7", "6/9", "last:4/5"]``. The rules count
votes whatever the vote method: they decide when to stop, ``cast_vote`` what to answer.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # kit.config imports this module
    from kit.config import VoteConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Vote:
    """One finished candidate's valid answer, and its confidence when logprobs were recorded."""

    candidate: int
    answer: str
    mean_entropy: float | None = None  # mean token entropy (nats) over all its tokens
    tail_entropy: float | None = None  # mean token entropy over its last VoteConfig.tail_tokens tokens
    reward: float | None = None  # an outcome reward model's score of its trace (kit/reward.py)


@dataclass(frozen=True)
class VoteResult:
    answer: str | None
    table: dict[str, int]  # answer -> votes, in the method's ranking (winner first, ties in tie-break order)
    weights: dict[str, float] = field(default_factory=dict)  # answer -> weight, same order as table
    method: str = "majority"  # the method that ranked it (majority when the entropies were missing)


def majority_vote(votes: list[Vote]) -> VoteResult:
    counts = Counter(v.answer for v in votes)
    first_voter: dict[str, int] = {}
    for v in votes:
        first_voter[v.answer] = min(v.candidate, first_voter.get(v.answer, v.candidate))
    ranked = sorted(counts, key=lambda a: (-counts[a], first_voter[a]))
    return VoteResult(answer=ranked[0] if ranked else None, table={a: counts[a] for a in ranked})


# The least mean entropy (nats) the entropy vote divides by. A candidate whose recorded entropy
# is 0 (every top-1 token at probability 1: greedy decoding, a scripted engine) would otherwise
# raise ZeroDivisionError, and a subnormal one would weigh inf (two answers at inf cannot be
# ranked by their other voters). Any sampled candidate's mean over its tokens is orders of magnitude above
# 1e-6 nats, so the floor never changes a real vote; a degenerate one weighs at most 1e6,
# finite: it still ranks first, and its answer's other voters still count.
ENTROPY_FLOOR = 1e-6


def has_entropy(vote: Vote, method: str) -> bool:
    """Whether ``vote`` holds a finite value of what ``method`` weighs it by: the mean entropy for
    entropy, the tail mean for combined, the reward model's score for rm."""
    value = vote.mean_entropy if method == "entropy" else vote.tail_entropy if method == "combined" else vote.reward
    return value is not None and math.isfinite(value)


def answer_weight(voters: list[Vote], total_votes: int, cfg: VoteConfig, method: str) -> float:
    if method == "entropy":
        return math.fsum(1 / max(v.mean_entropy, ENTROPY_FLOOR) for v in voters)
    if method == "combined":
        confidence = math.fsum(math.exp(-v.tail_entropy) for v in voters) / len(voters)
        return len(voters) / total_votes + cfg.confidence_weight * confidence
    if method == "rm" and cfg.rm_aggregate == "best":
        return max(v.reward for v in voters)
    if method == "rm":
        return math.fsum(1 / (1 + math.exp(-v.reward)) for v in voters)
    return float(len(voters))


def cast_vote(votes: list[Vote], cfg: VoteConfig) -> VoteResult:
    """The vote by ``cfg.method`` over valid answers (any order): the heaviest answer wins, ties
    to the answer whose first voter has the lowest candidate index. A vote lacking the entropy
    the method needs (or holding a non-finite one) makes this call a majority vote, logged."""
    method = cfg.method
    lacking = [] if method == "majority" else [v.candidate for v in votes if not has_entropy(v, method)]
    if lacking:
        signal = "reward-model score" if method == "rm" else "entropy (logprobs off?)"
        log.warning("vote.method %s: candidates %s have no usable %s; majority vote instead",
                    method, sorted(lacking), signal)
        method = "majority"
    voters: dict[str, list[Vote]] = {}
    for v in sorted(votes, key=lambda v: v.candidate):
        voters.setdefault(v.answer, []).append(v)
    weights = {a: answer_weight(vs, len(votes), cfg, method) for a, vs in voters.items()}
    ranked = sorted(voters, key=lambda a: (-weights[a], voters[a][0].candidate))
    return VoteResult(answer=ranked[0] if ranked else None, table={a: len(voters[a]) for a in ranked},
                      weights={a: weights[a] for a in ranked}, method=method)


VOTE_METHODS = ("majority", "entropy", "combined", "rm")

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
