"""The one-problem summary `kit solve` prints: the vote line under each vote method."""

from kit.sctir import ProblemResult
from kit.traces import format_result
from kit.voting import VoteResult


def summary_of(vote: VoteResult) -> str:
    return format_result(ProblemResult("p", vote.answer, vote, [], 12.0, 60.0, "all_finished", False))


def test_a_majority_vote_shows_counts_only():
    lines = summary_of(VoteResult("42", {"42": 3, "7": 1}, {"42": 3.0, "7": 1.0})).splitlines()
    assert lines[1] == "votes: 42: 3, 7: 1"


def test_an_entropy_vote_shows_each_answers_weight_and_the_method():
    vote = VoteResult("7", {"7": 1, "42": 3}, {"7": 2.0, "42": 1.8333333}, method="entropy")
    assert summary_of(vote).splitlines()[1] == "votes: 7: 1 (w 2), 42: 3 (w 1.83)  (entropy vote)"


def test_no_vote_shows_none():
    assert summary_of(VoteResult(None, {}, {}, method="combined")).splitlines()[1] == "votes: none  (combined vote)"
