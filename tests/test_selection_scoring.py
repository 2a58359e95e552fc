"""Bootstrap intervals over problems, pass@k as the ceiling, and AIMO-3's two-run score
(eval/selection/accuracy.py, eval/selection/competition.py)."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from eval.selection.accuracy import interval, replay, replay_problem
from eval.selection.competition import competition_table, score_distribution, score_summary, two_run_distribution
from eval.selection.methods import build_methods
from eval.selection.samples import ProblemSamples, Sample
from kit.config import VoteConfig
from kit.voting import Vote, cast_vote

MAJORITY = build_methods([])[0]


def toy(pid: str, answers: str, gold: str = "A", split: str = "toy") -> ProblemSamples:
    return ProblemSamples(pid, gold, split, tuple(Sample(answer=a, correct=a == gold, order=i)
                                                  for i, a in enumerate(answers)))


def test_bootstrap_interval_holds_the_mean_and_shrinks_with_more_problems():
    rng = np.random.default_rng(1)
    widths = []
    for problems in (25, 400):
        for trial in range(20):
            values = rng.random(problems) < 0.6
            low, high = interval(values.astype(float), seed=trial)
            assert low <= values.mean() <= high
        widths.append(high - low)
    # The width goes as 1/sqrt(problems): 16 times the problems, about a quarter of the width.
    assert widths[1] < widths[0] / 3


def test_bootstrap_is_reproducible_from_its_seed():
    values = np.linspace(0, 1, 30)
    assert np.array_equal(interval(values, seed=4), interval(values, seed=4))
    assert not np.array_equal(interval(values, seed=4), interval(values, seed=5))


def test_pass_at_k_bounds_every_method_where_the_expectation_is_exact():
    rng = np.random.default_rng(2)
    problems = [ProblemSamples(f"p{i}", "A", "toy", tuple(
        Sample(answer=a, correct=a == "A", order=j, tokens=int(rng.integers(1, 99)), mean_entropy=rng.random(),
               tail_entropy=rng.random(), code_ok=bool(rng.random() < 0.5), scores={"r": rng.normal()})
        for j, a in enumerate(rng.choice(list("ABCD"), size=6)))) for i in range(30)]
    methods = build_methods(["r"])
    result = replay(problems, methods, [1, 2, 3, 6], workers=1, progress=False)
    assert len(result.accuracy) == 7
    assert np.allclose(result.accuracy["majority"][0], result.pass_at_k[0])  # k=1: the pick is the sample
    for values in result.accuracy.values():
        assert (values <= result.pass_at_k + 1e-12).all()


def two_runs_by_enumeration(p: ProblemSamples, k: int) -> dict[float, float]:
    """The exact two-run score distribution: every pair of k-subsets, each voted by majority."""
    right = {s.answer for s in p.samples if s.correct}
    subsets = list(itertools.combinations(p.samples, k))
    scores: Counter[float] = Counter()
    for first, second in itertools.product(subsets, repeat=2):
        wins = [cast_vote([Vote(s.order, s.answer) for s in run if s.answer], VoteConfig()).answer in right
                for run in (first, second)]
        scores[sum(wins) / 2] += 1
    return {score: count / len(subsets) ** 2 for score, count in scores.items()}


@pytest.mark.parametrize("answers,k", [("AAB", 1), ("AABB", 2), ("ABBCA", 3), ("AB" + "C" * 3, 2)])
def test_two_run_score_of_a_problem_equals_its_closed_form(answers, k):
    p = toy("p", answers)
    prob = replay_problem(p, [MAJORITY], [k])["majority"][0]
    enumerated = two_runs_by_enumeration(p, k)
    closed = two_run_distribution(prob)
    assert [enumerated.get(s, 0.0) for s in (0.0, 0.5, 1.0)] == pytest.approx(closed)
    # E = 1 * p^2 + 0.5 * 2p(1-p) = p; Var = p(1-p)/2.
    expected = sum(s * q for s, q in enumerated.items())
    variance = sum(s * s * q for s, q in enumerated.items()) - expected ** 2
    summary = score_summary(np.array([prob]), np.array([prob]))
    assert summary["expected"] == pytest.approx(expected) == pytest.approx(prob)
    assert summary["std"] ** 2 == pytest.approx(variance)


def test_the_total_score_distribution_is_the_convolution_over_problems():
    # Two problems at p = 1/2 and 1: the second always scores 1, the first 0, 0.5, 1 w.p. 1/4, 1/2, 1/4.
    distribution = score_distribution(np.array([0.5, 1.0]))
    assert distribution == pytest.approx([0, 0, 0.25, 0.5, 0.25])
    summary = score_summary(np.array([0.5, 1.0]), np.array([0.75]))
    assert (summary["range_low"], summary["range_high"]) == (1.0, 2.0)
    assert summary["expected"] == 1.5 and summary["problems_low"] == summary["problems_high"] == 1.5


def test_competition_is_scored_per_split_and_overall():
    problems = [toy("a", "AAB", split="s1"), toy("b", "BBA", split="s1"), toy("c", "AAA", split="s2")]
    result = replay(problems, [MAJORITY], [1, 3], workers=1, progress=False)
    table = competition_table(result, problems, resamples=200)
    at_3 = table["majority"][3]
    assert at_3["overall"]["expected"] == pytest.approx(2.0)  # a and c right for sure, b wrong
    assert at_3["splits"]["s1"]["expected"] == pytest.approx(1.0) and at_3["splits"]["s2"]["expected"] == 1.0
    assert table["majority"][1]["overall"]["expected"] == pytest.approx(2 / 3 + 1 / 3 + 1)
