"""pass@k and maj@k against hand-computed values; the early-stop replay."""

import pytest

from eval.metrics import k_values, maj_at_k, pass_at_k, replay_early_stop
from kit.config import VoteConfig
from kit.sctir import Candidate
from kit.voting import parse_rules


@pytest.mark.parametrize("n, c, k, expected", [
    (5, 2, 1, 2 / 5),
    (5, 2, 2, 1 - 3 / 10),         # 1 - C(3,2)/C(5,2)
    (10, 3, 4, 1 - 35 / 210),      # 1 - C(7,4)/C(10,4)
    (4, 0, 2, 0.0),
    (4, 4, 1, 1.0),
    (6, 5, 2, 1.0),                # n - c < k: every pair holds a correct one
])
def test_pass_at_k_unbiased_estimator(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_refuses_impossible_counts():
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


def test_maj_at_k_exact_over_all_subsets():
    answers = ["7", "7", "3", None]
    correct = [True, True, False, False]
    assert maj_at_k(answers, correct, 4) == 1.0
    # k=1: right only when the one sample is one of the two "7"s.
    assert maj_at_k(answers, correct, 1) == pytest.approx(0.5)
    # k=2, 6 subsets: {7,7} {7,3}x2 {7,None}x2 {3,None}; ties go to the lower index ("7").
    assert maj_at_k(answers, correct, 2) == pytest.approx(5 / 6)


def test_maj_at_k_sampled_estimate_is_close():
    answers = ["1"] * 30 + ["2"] * 20
    correct = [True] * 30 + [False] * 20
    estimate = maj_at_k(answers, correct, 25, draws=400)
    assert 0.8 < estimate < 1.0


def test_k_values_are_powers_of_two_up_to_n():
    assert k_values(1) == [1]
    assert k_values(8) == [1, 2, 4, 8]
    assert k_values(6) == [1, 2, 4, 6]


def ended(answers: list[str | None], finish_s: list[float], cancelled: int = 0) -> list[Candidate]:
    """Candidates answering ``answers`` at ``finish_s``, then ``cancelled`` cancelled at 10 s."""
    done = [Candidate(i, status="answered" if a else "pruned", answer=a, finished_at_s=t)
            for i, (a, t) in enumerate(zip(answers, finish_s))]
    return done + [Candidate(len(done) + i, status="cancelled", finished_at_s=10 + i / 10) for i in range(cancelled)]


def test_replay_stops_where_the_rule_fires_and_votes_what_had_ended():
    early = replay_early_stop(ended(["5", None, "7", "5", "5", "7"], [1, 2, 3, 4, 5, 6]), parse_rules(["3/4"]),
                              VoteConfig())
    assert (early.rule, early.stopped_at_s, early.vote.table) == ("3/4", 5, {"5": 3, "7": 1})


def test_replay_counts_equal_finish_times_together():
    # At 1 s three answers are in (the kit sees them all ended), so the last two are 5 and 7: no
    # stop, though the first two alone would fire last:2/2.
    assert replay_early_stop(ended(["5", "5", "7", "9"], [1, 1, 1, 2]), parse_rules(["last:2/2"]), VoteConfig()) is None


def test_replay_never_stops_at_a_deadline_cancellation():
    # Two 5s, then two candidates cancelled at the deadline: running until then, so "decided" never
    # fires (2 - 0 > 2 is false); counting their cancellation as ends would fire it at 10 s.
    assert replay_early_stop(ended(["5", "5"], [1, 2], cancelled=2), parse_rules(["decided"]), VoteConfig()) is None


def test_replay_votes_by_the_runs_method_with_the_candidates_entropies():
    # 3/4 fires at 4 s on 5, 7, 5, 5 (a last 7 still running). Majority: 5. Entropy: 5 weighs
    # 3 * 1/2.0 = 1.5, the confident 7 weighs 1/0.1 = 10.
    answers, entropies = ["5", "7", "5", "5", "7"], [2.0, 0.1, 2.0, 2.0, 0.1]
    candidates = [Candidate(i, status="answered", answer=a, finished_at_s=i + 1, mean_entropy=h, tail_entropy=h)
                  for i, (a, h) in enumerate(zip(answers, entropies))]
    rules = parse_rules(["3/4"])
    majority = replay_early_stop(candidates, rules, VoteConfig())
    entropy = replay_early_stop(candidates, rules, VoteConfig(method="entropy"))
    assert (majority.stopped_at_s, majority.vote.answer) == (entropy.stopped_at_s, "5") == (4, "5")
    assert (entropy.vote.answer, entropy.vote.method, entropy.vote.weights) == ("7", "entropy", {"7": 10.0, "5": 1.5})
    # Candidates recorded without logprobs carry no entropy: the replay counts them, as the kit does.
    plain = [Candidate(c.index, status=c.status, answer=c.answer, finished_at_s=c.finished_at_s) for c in candidates]
    assert replay_early_stop(plain, rules, VoteConfig(method="entropy")).vote.method == "majority"
