"""Properties of the vote and the early-stop rules, checked exhaustively on small cases
(the mutation run of `make mutants` found the example-based tests in test_voting.py let
these be broken unnoticed)."""

import itertools
import math
import random

import pytest

from kit.config import VoteConfig
from kit.voting import VOTE_METHODS, EarlyStopRule, Vote, cast_vote, first_firing_rule, majority_vote, parse_rules

ANSWERS = "abc"


def small_histories(max_len: int = 5):
    for n in range(max_len + 1):
        yield from (list(h) for h in itertools.product(ANSWERS, repeat=n))


def cannot_be_overtaken(answers: list[str], pending: int) -> bool:
    """The definition of `decided`: for every way the pending candidates may still vote (each
    for a present answer, a new one, or none), the current leader ends strictly ahead."""
    if not answers:
        return False
    leader = max(set(answers), key=answers.count)
    for late in itertools.product([*set(answers), "new", None], repeat=pending):
        final = answers + [a for a in late if a is not None]
        if any(final.count(other) >= final.count(leader) for other in set(final) - {leader}):
            return False
    return True


def test_decided_fires_exactly_when_the_leader_cannot_be_overtaken():
    decided = EarlyStopRule.parse("decided")
    for answers in small_histories():
        for pending in range(4):
            assert decided.fires(answers, pending) == cannot_be_overtaken(answers, pending), (answers, pending)


def k_of_m_holds(window: list[str], k: int) -> bool:
    return any(window.count(a) >= k for a in set(window))


@pytest.mark.parametrize("spec", ["1/1", "2/2", "2/3", "3/5", "last:1/1", "last:2/3", "last:3/4"])
def test_k_of_m_looks_only_at_its_window(spec):
    rule = EarlyStopRule.parse(spec)
    for answers in small_histories():
        window = answers[-rule.m:] if rule.kind == "last" else answers[: rule.m]
        assert rule.fires(answers, pending=3) == k_of_m_holds(window, rule.k), (spec, answers)


def test_no_rule_fires_before_any_answer():
    rules = parse_rules(["decided", "1/1", "last:1/1", "1/5"])
    assert not any(rule.fires([], pending) for rule in rules for pending in (0, 3))
    assert first_firing_rule(rules, [], 0) is None


def test_first_firing_rule_passes_the_running_count_on():
    decided = parse_rules(["decided"])
    assert first_firing_rule(decided, ["a", "a"], pending=1) == decided[0]
    assert first_firing_rule(decided, ["a", "a"], pending=2) is None


@pytest.mark.parametrize("spec", ["decided", "1/1", "1/7", "4/4", "5/7", "last:1/1", "last:1/5", "last:4/5"])
def test_every_valid_rule_parses_and_prints_as_written(spec):
    assert str(EarlyStopRule.parse(spec)) == spec


def test_a_rule_prints_as_a_spec_that_parses_to_itself():
    for rule in parse_rules(["decided", "3/5", "last:2/4"]):
        assert EarlyStopRule.parse(str(rule)) == rule


@pytest.mark.parametrize("spec", ["0/3", "4/3", "last:0/1", "last:2/1"])
def test_k_outside_1_to_m_is_refused(spec):
    with pytest.raises(ValueError, match="1 <= K <= M"):
        EarlyStopRule.parse(spec)


def test_the_vote_does_not_depend_on_finish_order():
    # The winner and the table depend on who voted for what, not on the order they finished in.
    votes = [Vote(3, "x"), Vote(0, "y"), Vote(1, "x"), Vote(2, "y"), Vote(5, "z")]
    expected = majority_vote(sorted(votes, key=lambda v: v.candidate))
    for order in itertools.permutations(votes):
        result = majority_vote(list(order))
        assert (result.answer, list(result.table.items())) == (expected.answer, list(expected.table.items()))
    assert expected.answer == "y"  # tied 2-2 with x; y's first voter is candidate 0


# Entropies whose reciprocals and exponentials round differently when summed in another order,
# and 0 (the floor).
ENTROPIES = [0.0, 0.1, 0.2, 0.3, 1 / 3, 0.7, 1.0, 3.0, 10.0]


def random_votes(rng: random.Random) -> list[Vote]:
    n = rng.randint(1, 7)
    return [Vote(i, rng.choice(ANSWERS), mean_entropy=rng.choice(ENTROPIES), tail_entropy=rng.choice(ENTROPIES))
            for i in rng.sample(range(12), n)]


@pytest.mark.parametrize("method", VOTE_METHODS)
def test_no_finish_order_changes_cast_votes_result(method):
    # Answer, table, weights and their order: bit for bit the same, whatever order the votes came in.
    rng = random.Random(0)
    cfg = VoteConfig(method=method, confidence_weight=0.7)
    for _ in range(300):
        votes = random_votes(rng)
        expected = cast_vote(sorted(votes, key=lambda v: v.candidate), cfg)
        for _ in range(10):
            result = cast_vote(rng.sample(votes, len(votes)), cfg)
            assert (result.answer, list(result.table.items()), list(result.weights.items())) == \
                (expected.answer, list(expected.table.items()), list(expected.weights.items())), votes


@pytest.mark.parametrize("method", VOTE_METHODS)
def test_the_winner_weighs_most_and_the_table_counts_every_vote(method):
    rng = random.Random(1)
    for _ in range(300):
        votes = random_votes(rng)
        result = cast_vote(votes, VoteConfig(method=method))
        weights = list(result.weights.values())
        assert weights == sorted(weights, reverse=True) and result.answer == next(iter(result.weights))
        assert list(result.table) == list(result.weights)
        assert sorted(result.table.items()) == sorted(majority_vote(votes).table.items())


def test_entropy_and_combined_rank_as_majority_when_confidence_says_nothing():
    # Every candidate equally confident (entropy), or the confidence weighted 0 (combined): the
    # count alone decides, ties included.
    rng = random.Random(2)
    for _ in range(300):
        votes = random_votes(rng)
        majority = majority_vote(votes)
        h = rng.choice(ENTROPIES)
        same = [Vote(v.candidate, v.answer, mean_entropy=h) for v in votes]
        assert list(cast_vote(same, VoteConfig(method="entropy")).table.items()) == list(majority.table.items())
        share_only = cast_vote(votes, VoteConfig(method="combined", confidence_weight=0.0))
        assert list(share_only.table.items()) == list(majority.table.items())
        assert math.fsum(share_only.weights.values()) == pytest.approx(1.0)
