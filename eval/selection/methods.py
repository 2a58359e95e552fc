"""The selection methods the lab replays: each turns the samples of a subset into one answer.

- ``majority``, ``entropy``, ``combined``: the kit's own votes, cast by ``kit.voting.cast_vote``
  (one rule in one place: what the lab measures is what the kit submits).
- ``NAME:best`` and ``NAME:sum`` for every per-candidate score column ``NAME`` (a reward model's
  score: ``reward`` in runs made with one): ``cast_vote``'s ``rm`` vote with the score as the
  reward, ``rm_aggregate`` best (the answer of the best-scored candidate: Qwen2.5-Math's RM@k) or
  sum (each answer weighs the sum of sigmoid(score) of its candidates).
- ``shortest``: each answer weighs the sum over its candidates of ``1 / tokens``. Short traces
  are more often right (a model that has found the answer stops; one that has not wanders, loops
  and runs into its budget), and a sum rather than the single shortest candidate keeps the
  majority's evidence: five candidates agreeing beat one short outlier unless it is five times
  shorter than each of them. The weight is scale-free (every length doubled, same answer), so no
  per-problem constant is needed.
- ``code-verified``: each candidate weighs 1, plus ``code_bonus`` (default 1: it counts twice)
  if it ran code and every cell ran without error. With bonus 1 a verified answer outweighs an
  unverified one voted as often, and ties one voted twice as often (the tie to the lower candidate
  index) — verification moves close votes without overruling a clear majority; a larger bonus
  trusts it more, 0 is majority.

``shortest`` and ``code-verified`` weigh answers by a per-candidate weight that ``cast_vote`` has
no method for; :func:`weighted_vote` ranks them with cast_vote's rule (exact sums, ties to the
answer whose first voter has the lowest candidate index), and a test holds it to cast_vote's
majority at weight 1.

A method needs a signal on every sample that votes (an entropy, a score, a length): one that
lacks it would make ``cast_vote`` fall back to a majority vote subset by subset, and the curve
would be neither method. :func:`available_methods` leaves such a method out and says why.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from eval.selection.options import DEFAULT_CODE_BONUS
from eval.selection.samples import ProblemSamples, Sample
from kit.config import VoteConfig
from kit.voting import Vote, cast_vote



@dataclass(frozen=True)
class Ballot:
    """A sample's vote under a weighted method."""

    order: int
    answer: str
    weight: float


def weighted_vote(ballots: list[Ballot]) -> str | None:
    """The answer of the heaviest exact sum of weights; ties to the answer whose first voter has
    the lowest order (cast_vote's tie-break)."""
    weights: dict[str, list[float]] = {}
    first: dict[str, int] = {}
    for ballot in sorted(ballots, key=lambda b: b.order):
        weights.setdefault(ballot.answer, []).append(ballot.weight)
        first.setdefault(ballot.answer, ballot.order)
    sums = {answer: math.fsum(ws) for answer, ws in weights.items()}
    return min(sums, key=lambda a: (-sums[a], first[a])) if sums else None


@dataclass(frozen=True)
class CastVoteMethod:
    """A vote cast by ``kit.voting.cast_vote`` under ``vote`` (rm: with ``score`` as the reward)."""

    name: str
    description: str
    vote: VoteConfig
    score: str | None = None

    def ballot(self, sample: Sample) -> Vote:
        reward = sample.scores.get(self.score) if self.score is not None else None
        return Vote(sample.order, sample.answer, sample.mean_entropy, sample.tail_entropy, reward)

    def lacks(self, sample: Sample) -> bool:
        value = {"majority": 0.0, "entropy": sample.mean_entropy, "combined": sample.tail_entropy,
                 "rm": sample.scores.get(self.score)}[self.vote.method]
        return value is None or not math.isfinite(value)

    def pick(self, ballots: list[Vote]) -> str | None:
        return cast_vote(ballots, self.vote).answer


def length_weight(sample: Sample) -> float:
    return 1.0 / sample.tokens


def verified_weight(bonus: float, sample: Sample) -> float:
    return 1.0 + bonus if sample.code_ok else 1.0


def needs_nothing(sample: Sample) -> bool:
    return True


def has_tokens(sample: Sample) -> bool:
    return sample.tokens > 0


@dataclass(frozen=True)
class WeightedMethod:
    """A vote in which each sample weighs ``weight(sample)`` (:func:`weighted_vote`)."""

    name: str
    description: str
    weight: Callable[[Sample], float]
    needs: Callable[[Sample], bool] = needs_nothing  # whether a sample has what its weight is computed from

    def ballot(self, sample: Sample) -> Ballot:
        return Ballot(sample.order, sample.answer, self.weight(sample))

    def lacks(self, sample: Sample) -> bool:
        return not self.needs(sample)

    def pick(self, ballots: list[Ballot]) -> str | None:
        return weighted_vote(ballots)


Method = CastVoteMethod | WeightedMethod


def build_methods(score_names: list[str], confidence_weight: float = 1.0,
                  code_bonus: float = DEFAULT_CODE_BONUS) -> list[Method]:
    """Every method, the base ones and two per score column."""
    if code_bonus < 0:
        raise ValueError(f"code bonus must be >= 0, got {code_bonus}")
    methods: list[Method] = [
        CastVoteMethod("majority", "the most voted answer (self-consistency)", VoteConfig(method="majority")),
        CastVoteMethod("entropy", "sum over an answer's candidates of 1 / mean token entropy",
                       VoteConfig(method="entropy")),
        CastVoteMethod("combined", f"vote share + {confidence_weight:g} x mean exp(-tail entropy)",
                       VoteConfig(method="combined", confidence_weight=confidence_weight)),
        WeightedMethod("shortest", "sum over an answer's candidates of 1 / generated tokens", length_weight,
                       needs=has_tokens),
        WeightedMethod("code-verified", f"each candidate 1, +{code_bonus:g} when all its code ran without error",
                       partial(verified_weight, code_bonus)),
    ]
    for score in score_names:
        for aggregate, how in (("best", "the answer of the best-scored candidate"),
                               ("sum", "sum over an answer's candidates of sigmoid(score)")):
            methods.append(CastVoteMethod(f"{score}:{aggregate}", f"{how} (score column {score})",
                                          VoteConfig(method="rm", rm_aggregate=aggregate), score=score))
    return methods


def score_names(problems: list[ProblemSamples]) -> list[str]:
    return sorted({name for p in problems for s in p.samples for name in s.scores})


def available_methods(problems: list[ProblemSamples], methods: list[Method]) -> tuple[list[Method], dict[str, str]]:
    """The methods every voting sample has the signal for, and why each other one was left out."""
    voting = [s for p in problems for s in p.samples if s.answer is not None]
    kept, skipped = [], {}
    for method in methods:
        lacking = sum(method.lacks(s) for s in voting)
        if method.name == "code-verified" and all(s.code_ok is None for s in voting):
            skipped[method.name] = "no sample ran code"
        elif lacking:
            skipped[method.name] = f"{lacking} of {len(voting)} answered samples lack its signal"
        else:
            kept.append(method)
    return kept, skipped


def choose_methods(problems: list[ProblemSamples], names: list[str] | None, confidence_weight: float,
                   code_bonus: float) -> tuple[list[Method], dict[str, str]]:
    """The methods to replay: ``names`` (all available when None), refusing an unknown one or one
    the samples cannot support."""
    every = build_methods(score_names(problems), confidence_weight, code_bonus)
    kept, skipped = available_methods(problems, every)
    if names is None:
        return kept, skipped
    known = {m.name: m for m in kept}
    for name in names:
        if name in skipped:
            raise ValueError(f"method {name}: {skipped[name]}")
        if name not in known:
            raise ValueError(f"method {name!r} unknown; these samples support {sorted(known)}")
    return [known[name] for name in dict.fromkeys(names)], skipped
