"""The selection lab's methods on hand-made samples, each against a hand-computed result
(eval/selection/methods.py, eval/selection/accuracy.py's replay_problem)."""

from __future__ import annotations

import random
from itertools import combinations

import pytest

from eval.selection.accuracy import replay_problem, subsets
from eval.selection.methods import Ballot, available_methods, build_methods, choose_methods, weighted_vote
from eval.selection.samples import ProblemSamples, Sample
from kit.config import VoteConfig
from kit.voting import Vote, cast_vote


def problem(*samples: dict, gold: str = "A") -> ProblemSamples:
    """Samples from keyword dicts; order = position, correct = the answer is gold."""
    return ProblemSamples("p", gold, "toy", tuple(Sample(correct=s.get("answer") == gold, order=i, **s)
                                                  for i, s in enumerate(samples)))


def method(name: str, **kw):
    return next(m for m in build_methods(["reward"], **kw) if m.name == name)


def accuracy(p: ProblemSamples, name: str, ks: list[int], **kw) -> list[float]:
    return replay_problem(p, [method(name, **kw)], ks)[name]


def test_majority_counts_votes_and_breaks_ties_to_the_lowest_candidate():
    # Subsets of two: {0,1} A,B tie -> A (candidate 0); {0,2} A,B -> A; {1,2} B,B -> B. One of three wrong.
    p = problem({"answer": "A"}, {"answer": "B"}, {"answer": "B"})
    assert accuracy(p, "majority", [1, 2, 3]) == pytest.approx([1 / 3, 2 / 3, 0.0])


def test_entropy_lets_one_confident_candidate_beat_two_unsure_ones():
    # A weighs 1/0.1 = 10, each B 1/0.5 = 2: A wins the whole vote and every pair it is in.
    p = problem({"answer": "A", "mean_entropy": 0.1}, {"answer": "B", "mean_entropy": 0.5},
                {"answer": "B", "mean_entropy": 0.5})
    assert accuracy(p, "entropy", [2, 3]) == pytest.approx([2 / 3, 1.0])
    assert accuracy(p, "majority", [3]) == [0.0]


def test_combined_weighs_the_vote_share_against_the_tail_confidence():
    # A: 1/3 + w * exp(0) ; B: 2/3 + w * exp(-2). w=1: 1.333 vs 0.802 -> A; w=0.1: 0.433 vs 0.680 -> B.
    p = problem({"answer": "A", "tail_entropy": 0.0}, {"answer": "B", "tail_entropy": 2.0},
                {"answer": "B", "tail_entropy": 2.0})
    assert accuracy(p, "combined", [3], confidence_weight=1.0) == [1.0]
    assert accuracy(p, "combined", [3], confidence_weight=0.1) == [0.0]


def test_shortest_sums_inverse_lengths():
    # A: 1/100 = 0.0100 vs B: 2/1000 = 0.0020 -> A; against B at 150 tokens each, 2/150 = 0.0133 -> B.
    far = problem({"answer": "A", "tokens": 100}, {"answer": "B", "tokens": 1000}, {"answer": "B", "tokens": 1000})
    near = problem({"answer": "A", "tokens": 100}, {"answer": "B", "tokens": 150}, {"answer": "B", "tokens": 150})
    assert accuracy(far, "shortest", [3]) == [1.0]
    assert accuracy(near, "shortest", [3]) == [0.0]


def test_code_verified_counts_a_clean_candidate_one_plus_the_bonus():
    # Bonus 1: A (clean) 2 vs B 1 + 1 = 2, a tie to the lower candidate; bonus 2: A 3 vs 2.
    a_first = problem({"answer": "A", "code_ok": True}, {"answer": "B", "code_ok": False}, {"answer": "B"})
    b_first = problem({"answer": "B", "code_ok": False}, {"answer": "A", "code_ok": True}, {"answer": "B"})
    assert accuracy(a_first, "code-verified", [3]) == [1.0]
    assert accuracy(b_first, "code-verified", [3]) == [0.0]
    assert accuracy(b_first, "code-verified", [3], code_bonus=2.0) == [1.0]
    assert accuracy(b_first, "code-verified", [3], code_bonus=0.0) == [0.0]


def test_score_columns_vote_by_the_best_score_or_the_sum_of_sigmoids():
    # best: A's 2.0 tops B's 1.5; sum: A sigmoid(2) = 0.881 vs B sigmoid(1) + sigmoid(1.5) = 1.549.
    p = problem({"answer": "A", "scores": {"reward": 2.0}}, {"answer": "B", "scores": {"reward": 1.0}},
                {"answer": "B", "scores": {"reward": 1.5}})
    assert accuracy(p, "reward:best", [3]) == [1.0]
    assert accuracy(p, "reward:sum", [3]) == [0.0]


def test_a_subset_without_answers_is_wrong_and_a_lone_answer_wins():
    p = problem({"answer": None}, {"answer": None}, {"answer": "A", "tokens": 9}, {"answer": "B", "tokens": 9})
    # Pairs: {0,1} none -> wrong; {0,2},{1,2} A alone -> right; {0,3},{1,3} B -> wrong; {2,3} tie -> A (lower).
    for name in ("majority", "shortest"):
        assert accuracy(p, name, [1, 2]) == pytest.approx([1 / 4, 3 / 6])


def test_sampled_subsets_are_reproducible_and_estimate_the_exact_expectation():
    rng = random.Random(3)
    p = problem(*({"answer": rng.choice("AAB" + "C")} for _ in range(12)))
    exact = replay_problem(p, [method("majority")], [6], draws=10_000)["majority"][0]
    sampled = replay_problem(p, [method("majority")], [6], draws=300)["majority"][0]
    assert len(subsets(12, 6, 300, "x")) == 300 and subsets(12, 6, 300, "x") == subsets(12, 6, 300, "x")
    assert len(subsets(12, 6, 10_000, "x")) == 924
    assert sampled == replay_problem(p, [method("majority")], [6], draws=300)["majority"][0]
    assert sampled == pytest.approx(exact, abs=0.08)


def test_weighted_vote_at_unit_weights_is_cast_votes_majority():
    rng = random.Random(0)
    for _ in range(500):
        n = rng.randint(1, 9)
        orders = rng.sample(range(20), n)
        answers = [rng.choice("ABC") for _ in range(n)]
        votes = [Vote(o, a) for o, a in zip(orders, answers)]
        ballots = [Ballot(o, a, 1.0) for o, a in zip(orders, answers)]
        rng.shuffle(ballots)
        assert weighted_vote(ballots) == cast_vote(votes, VoteConfig()).answer


def test_a_method_whose_signal_some_sample_lacks_is_left_out_with_the_reason():
    p = problem({"answer": "A", "mean_entropy": 0.2, "tokens": 10}, {"answer": "B", "tokens": 10},
                {"answer": None})
    kept, skipped = available_methods([p], build_methods(["reward"]))
    assert "1 of 2 answered samples" in skipped["entropy"]
    assert skipped["code-verified"] == "no sample ran code"
    assert {"majority", "shortest"} <= {m.name for m in kept}
    assert "reward:best" in skipped and "combined" in skipped
    with pytest.raises(ValueError, match="entropy: 1 of 2"):
        choose_methods([p], ["entropy"], 1.0, 1.0)
    with pytest.raises(ValueError, match="unknown"):
        choose_methods([p], ["bogus"], 1.0, 1.0)


def test_every_pair_is_enumerated_when_few():
    assert subsets(4, 2, 200, "k") == list(combinations(range(4), 2))
