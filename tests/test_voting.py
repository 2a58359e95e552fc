"""The votes (majority, entropy, combined), their tie-break and fallback, and the early-stop rules."""

import itertools
import logging
import math

import pytest

from kit.config import VoteConfig, load_config
from kit.voting import ENTROPY_FLOOR, EarlyStopRule, Vote, cast_vote, first_firing_rule, majority_vote, parse_rules


def test_majority_wins_and_table_is_ordered():
    result = majority_vote([Vote(0, "1"), Vote(1, "2"), Vote(2, "2")])
    assert result.answer == "2"
    assert list(result.table.items()) == [("2", 2), ("1", 1)]


def test_tie_break_is_by_lowest_candidate_index_not_finish_order():
    a = majority_vote([Vote(5, "x"), Vote(1, "y")])
    b = majority_vote([Vote(1, "y"), Vote(5, "x")])
    assert a.answer == b.answer == "y"


def test_no_votes_gives_no_answer():
    assert majority_vote([]).answer is None


def test_decided_fires_only_when_the_leader_cannot_be_overtaken():
    rule = EarlyStopRule.parse("decided")
    assert not rule.fires(["1", "1", "1"], pending=3)
    assert rule.fires(["1", "1", "1", "1"], pending=3)
    assert not rule.fires(["1", "1", "2"], pending=1)


def test_first_k_of_m():
    rule = EarlyStopRule.parse("4/5")
    assert rule.fires(["1", "1", "2", "1", "1"], pending=10)
    assert not rule.fires(["1", "1", "2", "1", "3"], pending=10)
    # Only the first five count: a fourth "1" arriving sixth does not fire it.
    assert not rule.fires(["1", "1", "2", "1", "3", "1"], pending=10)


def test_last_k_of_m():
    rule = EarlyStopRule.parse("last:4/5")
    assert rule.fires(["9", "9", "1", "1", "2", "1", "1"], pending=10)
    assert not rule.fires(["1", "1", "1", "2", "3", "1"], pending=10)


def test_aimo2_rule_set_in_order():
    rules = parse_rules(["4/4", "5/7", "6/9", "last:4/5"])
    assert str(first_firing_rule(rules, ["3"] * 4, pending=12)) == "4/4"
    assert str(first_firing_rule(rules, ["3", "3", "1", "3", "2", "3", "3"], pending=9)) == "5/7"
    assert first_firing_rule(rules, ["1", "2", "3"], pending=13) is None


@pytest.mark.parametrize("spec", ["", "4", "5/4", "0/3", "last:", "first:2/3", "majority"])
def test_malformed_rules_are_refused_by_name(spec):
    with pytest.raises(ValueError, match="early-stop rule"):
        EarlyStopRule.parse(spec)


# Three candidates say 42, one says 7. The mean entropies make 7 the confident answer; the tail
# entropies (ln 1, ln 2, ln 4 for 42's: confidences exp(-tail) = 1, 1/2, 1/4) the combined vote's.
# Each field is set to what would flip the other method's result, so a method reading the wrong
# field gives another answer.
SPLIT = [Vote(0, "42", mean_entropy=1.0, tail_entropy=0.0), Vote(1, "7", mean_entropy=0.5, tail_entropy=0.0),
         Vote(2, "42", mean_entropy=2.0, tail_entropy=math.log(2)),
         Vote(3, "42", mean_entropy=4.0, tail_entropy=math.log(4))]


def test_majority_method_counts_votes_as_majority_vote_does():
    result = cast_vote(SPLIT, VoteConfig(method="majority"))
    assert (result.answer, result.table, result.method) == ("42", majority_vote(SPLIT).table, "majority")
    assert list(result.weights.items()) == [("42", 3.0), ("7", 1.0)]


def test_entropy_vote_sums_inverse_mean_entropies():
    # 42: 1/1.0 + 1/2.0 + 1/4.0 = 1.75; 7: 1/0.5 = 2.0. The one confident 7 outweighs three 42s.
    result = cast_vote(SPLIT, VoteConfig(method="entropy"))
    assert (result.answer, result.method) == ("7", "entropy")
    assert list(result.weights.items()) == [("7", 2.0), ("42", 1.75)]
    assert list(result.table.items()) == [("7", 1), ("42", 3)]  # counts, in the entropy ranking


@pytest.mark.parametrize("confidence_weight, expected", [
    # 42: share 3/4 + w * mean(1, 1/2, 1/4) = 0.75 + w * 7/12; 7: share 1/4 + w * 1.
    (1.0, [("42", 0.75 + 7 / 12), ("7", 0.25 + 1.0)]),        # 1.333 > 1.25
    (2.0, [("7", 0.25 + 2.0), ("42", 0.75 + 2 * 7 / 12)]),    # 2.25 > 1.917: the mean, not the sum (4.25)
    (0.0, [("42", 0.75), ("7", 0.25)]),                        # vote share only
])
def test_combined_vote_adds_vote_share_and_mean_tail_confidence(confidence_weight, expected):
    result = cast_vote(SPLIT, VoteConfig(method="combined", confidence_weight=confidence_weight))
    assert result.method == "combined" and result.answer == expected[0][0]
    assert list(result.weights) == [a for a, _ in expected]
    assert list(result.weights.values()) == pytest.approx([w for _, w in expected])
    assert result.table == {"42": 3, "7": 1}


def test_a_zero_entropy_candidate_weighs_the_floor_not_inf():
    # 1 / max(0.0, ENTROPY_FLOOR) = 1e6: finite, first, and its answer's other voter still counts.
    result = cast_vote([Vote(0, "1", mean_entropy=0.5), Vote(1, "2", mean_entropy=0.0),
                        Vote(2, "3", mean_entropy=0.0), Vote(3, "3", mean_entropy=0.25)], VoteConfig(method="entropy"))
    assert ENTROPY_FLOOR == 1e-6
    assert result.weights == {"3": 1e6 + 4.0, "2": 1e6, "1": 2.0} and result.answer == "3"


@pytest.mark.parametrize("method, votes", [
    # x: 1/1 + 1/1 = 2; y: 1/0.5 = 2.
    ("entropy", [Vote(3, "x", mean_entropy=1.0), Vote(0, "x", mean_entropy=1.0), Vote(1, "y", mean_entropy=0.5)]),
    # Both: share 2/4 + mean(e^0, e^-ln2) = 1/2 + 3/4.
    ("combined", [Vote(3, "x", tail_entropy=0.0), Vote(0, "x", tail_entropy=math.log(2)),
                  Vote(1, "y", tail_entropy=0.0), Vote(2, "y", tail_entropy=math.log(2))]),
])
def test_an_exact_tie_goes_to_the_lowest_first_voter_whatever_the_finish_order(method, votes):
    # x's first voter is candidate 0, though in many finish orders its candidate 3 is in before y's.
    for order in itertools.permutations(votes):
        result = cast_vote(list(order), VoteConfig(method=method))
        assert result.weights["x"] == result.weights["y"] and result.answer == "x", order
        assert list(result.table) == ["x", "y"]


def test_weights_are_exact_sums_so_equal_voters_in_another_order_tie():
    # x's voters (0, 2, 4) weigh 1/h = 0.1, 0.2, 0.3; y's (1, 3, 5) 0.3, 0.2, 0.1. Summed left to
    # right in index order, x = 0.6000000000000001 > y = 0.6 and float rounding would pick x;
    # math.fsum makes both exactly 0.6, a tie, to x by its first voter. Reversed, y would win.
    assert 0.1 + 0.2 + 0.3 != 0.3 + 0.2 + 0.1
    entropies = {"x": [10.0, 5.0, 1 / 0.3], "y": [1 / 0.3, 5.0, 10.0]}
    votes = [Vote(2 * i + (a == "y"), a, mean_entropy=h) for a, hs in entropies.items() for i, h in enumerate(hs)]
    result = cast_vote(votes, VoteConfig(method="entropy"))
    assert result.weights == {"x": 0.6, "y": 0.6} and result.answer == "x"
    flipped = [Vote(v.candidate, {"x": "y", "y": "x"}[v.answer], mean_entropy=v.mean_entropy) for v in votes]
    result = cast_vote(flipped, VoteConfig(method="entropy"))
    assert result.weights == {"y": 0.6, "x": 0.6} and result.answer == "y"


@pytest.mark.parametrize("method, missing", [
    ("entropy", Vote(2, "7", tail_entropy=0.1)),               # logprobs off for it: no mean entropy
    ("entropy", Vote(2, "7", mean_entropy=math.nan)),
    ("combined", Vote(2, "7", mean_entropy=0.1)),             # the mean is no use to combined: no tail
    ("combined", Vote(2, "7", mean_entropy=0.1, tail_entropy=math.inf)),
])
def test_a_vote_without_the_methods_entropy_falls_back_to_majority_with_one_warning(method, missing, caplog):
    votes = [Vote(0, "7", mean_entropy=9.0, tail_entropy=9.0), Vote(1, "5", mean_entropy=0.1, tail_entropy=0.0),
             missing, Vote(3, "7", mean_entropy=9.0, tail_entropy=9.0)]
    assert cast_vote([v for v in votes if v is not missing], VoteConfig(method=method)).answer == "5"
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kit.voting"):
        result = cast_vote(votes, VoteConfig(method=method))
    assert (result.answer, result.method, result.weights) == ("7", "majority", {"7": 3.0, "5": 1.0})
    (record,) = caplog.records
    assert method in record.getMessage() and "[2]" in record.getMessage()


def test_no_votes_gives_no_answer_under_every_method():
    for method in ("majority", "entropy", "combined"):
        result = cast_vote([], VoteConfig(method=method))
        assert (result.answer, result.table, result.weights, result.method) == (None, {}, {}, method)


def test_the_vote_section_refuses_an_unknown_method_by_name():
    with pytest.raises(ValueError, match="vote.method: 'plurality' is not one of"):
        load_config(None, vote={"method": "plurality"})


@pytest.mark.parametrize("method", ["entropy", "combined"])
def test_an_entropy_vote_without_logprobs_is_refused(method):
    with pytest.raises(ValueError, match=f"vote.method: {method} .* needs logprobs >= 1"):
        load_config(None, vote={"method": method})
    assert load_config(None, vote={"method": method}, logprobs=5).vote.method == method
