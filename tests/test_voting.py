"""Majority vote, tie-break and early-stop rules."""

import pytest

from kit.voting import EarlyStopRule, Vote, first_firing_rule, majority_vote, parse_rules


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
