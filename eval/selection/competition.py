"""Competition scoring as AIMO-3 scores it: the private set is run twice, and a problem scores 1
when both runs answer it right, 0.5 when one does, 0 when neither does.

The two runs are two independent draws of k candidates per problem. If the method picks the right
answer from k draws with probability p (:mod:`eval.selection.accuracy`), a problem scores 1 with
probability p^2, 0.5 with 2p(1-p) and 0 with (1-p)^2: expectation p^2 + 0.5 * 2p(1-p) = p, the
single run's accuracy, and variance p^2 + 0.25 * 2p(1-p) - p^2 = p(1-p)/2, half a single run's
(the second run averages out half the luck). Problems are independent, so the total's expectation
is the sum of the p's, its variance the sum of the p(1-p)/2, and its whole distribution the
convolution of the problems' three-point distributions — exact, no simulation: the 95% range is
read off it. That range is the run-to-run luck on these problems; how well these problems stand
for the private set is the bootstrap interval over problems (the accuracy's, scaled to points).
"""

from __future__ import annotations

import numpy as np

from eval.selection.accuracy import RESAMPLES, Replay, bootstrap_means
from eval.selection.samples import ProblemSamples


def two_run_distribution(p: float) -> np.ndarray:
    """Probabilities that a problem scores 0, 0.5 and 1 over the two runs."""
    if not 0 <= p <= 1:
        raise ValueError(f"probability {p} not in [0, 1]")
    return np.array([(1 - p) ** 2, 2 * p * (1 - p), p * p])


def score_distribution(ps: np.ndarray) -> np.ndarray:
    """The exact distribution of the total score over problems with right-pick probabilities
    ``ps``: entry i is the probability of scoring i / 2 points."""
    distribution = np.ones(1)
    for p in ps:
        distribution = np.convolve(distribution, two_run_distribution(float(p)))
    return distribution


def quantile(distribution: np.ndarray, q: float) -> float:
    """The least score (in points) whose cumulative probability reaches q."""
    index = int(np.searchsorted(np.cumsum(distribution), q - 1e-12))
    return min(index, len(distribution) - 1) / 2


def score_summary(ps: np.ndarray, problem_means: np.ndarray) -> dict:
    """The two-run score of a set of problems with right-pick probabilities ``ps``: expected
    points, standard deviation, the exact 95% range of the run-to-run luck; and, from
    ``problem_means`` (bootstrap resamples of the mean of ``ps`` over problems), the 95% interval
    of the expected points over problems."""
    distribution = score_distribution(ps)
    low, high = np.percentile(problem_means, [2.5, 97.5]) * len(ps)
    return {"problems": len(ps), "expected": float(ps.sum()), "std": float(np.sqrt((ps * (1 - ps) / 2).sum())),
            "range_low": quantile(distribution, 0.025), "range_high": quantile(distribution, 0.975),
            "problems_low": float(low), "problems_high": float(high)}


def competition_table(result: Replay, problems: list[ProblemSamples], resamples: int = RESAMPLES,
                      seed: int = 0) -> dict[str, dict[int, dict]]:
    """Per method, per k: the two-run score overall and per split."""
    splits = {split: np.array([p.split == split for p in problems]) for split in sorted({p.split for p in problems})}
    names = list(result.accuracy)
    stacked = np.stack([result.accuracy[name] for name in names])  # (methods, ks, problems)
    overall_means = bootstrap_means(stacked, resamples, seed)
    split_means = {split: bootstrap_means(stacked[..., mask], resamples, seed) for split, mask in splits.items()}
    table: dict[str, dict[int, dict]] = {}
    for m, name in enumerate(names):
        table[name] = {}
        for i, k in enumerate(result.ks):
            table[name][k] = {
                "overall": score_summary(stacked[m, i], overall_means[m, i]),
                "splits": {split: score_summary(stacked[m, i, mask], split_means[split][m, i])
                           for split, mask in splits.items()},
            }
    return table
