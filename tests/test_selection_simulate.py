"""Early-stop rules and competition runs replayed on hand-made samples (eval/selection/simulate.py)."""

import random

import pytest

from eval.metrics import replay_early_stop
from eval.selection.samples import ProblemSamples, Sample
from eval.selection.simulate import (
    _Problem,
    _replay_draw,
    as_candidate,
    early_stop_table,
    parse_rule_set,
    plot_early_stop,
    plot_simulation,
    simulate_competition,
)
from kit.config import TimePolicyConfig, VoteConfig

MAJORITY = VoteConfig()
BANK = TimePolicyConfig()
CLAMP = TimePolicyConfig(kind="clamp", reserve_s=20.0, min_s=20.0, max_s=100.0)


def problem(pid: str, gold: str, rows: list[tuple], **kw) -> ProblemSamples:
    """rows: (answer, finish_s, tokens), candidate index = position."""
    return ProblemSamples(pid, gold, samples=tuple(
        Sample(answer=a, correct=a == gold, tokens=tokens, finish_s=t, order=i) for i, (a, t, tokens) in enumerate(rows)),
        **kw)


def row_for(rows: list[dict], rules: str) -> dict:
    return next(r for r in rows if r["rules"] == rules)


def test_first_k_agreeing_answers_save_the_hand_computed_tokens():
    # 4/4 fires at t=4, when the first four agree; the two still running (finishing at 8 s and
    # 10 s) had done 4/8 and 4/10 of their tokens by then.
    p = problem("p", "7", [("7", 1, 100), ("7", 2, 100), ("7", 3, 100), ("7", 4, 100), ("3", 8, 800), ("7", 10, 1000)])
    r = row_for(early_stop_table([p], ["4/4"], MAJORITY), "4/4")
    saved = 800 * (1 - 4 / 8) + 1000 * (1 - 4 / 10)
    assert r["tokens_saved"] == pytest.approx(saved / 2200)
    assert r["time_saved"] == pytest.approx(6 / 10)
    assert r["time_saved_s"] == pytest.approx(6.0)
    assert r["fired"] == 1.0 and r["fired_by_rule"] == {"4/4": 1}
    assert r["agreement"] == 1.0 and r["accuracy"] == 1.0


def test_decided_alone_never_changes_the_majority_answer():
    problems = [
        problem("early-wrong", "1", [("2", 1, 10), ("2", 2, 10), ("1", 3, 10), ("1", 4, 10), ("1", 5, 10)]),
        problem("clear", "5", [("5", 1, 10), ("5", 2, 10), ("5", 3, 10), ("9", 4, 10), ("5", 9, 10)]),
        problem("tie", "4", [("4", 1, 10), ("8", 2, 10), ("8", 3, 10), ("4", 4, 10), (None, 5, 10)]),
        problem("late", "6", [(None, 1, 10), ("6", 2, 10), ("6", 3, 10), ("6", 4, 10), ("0", 5, 10), ("6", 6, 10)]),
    ]
    rows = early_stop_table(problems, ["decided"], MAJORITY)
    decided = row_for(rows, "decided")
    assert decided["fired"] > 0
    assert decided["agreement"] == 1.0
    assert decided["accuracy"] == decided["full_vote_accuracy"]
    assert row_for(rows, "2/2")["agreement"] < 1.0  # a rule that can change it does, on the same problems


def test_fast_replay_matches_eval_metrics_replay_in_finish_order_with_ties():
    rng = random.Random(5)
    rule_sets = ["4/4,5/7,6/9,last:4/5", "decided", "2/2", "3/5", "last:2/3"]
    for trial in range(300):
        n = rng.randint(2, 9)
        # Few distinct times, so ties are common; indices shuffled so the tuple order is not the index order.
        indices = rng.sample(range(n), n)
        samples = tuple(Sample(answer=rng.choice(["1", "2", "3", None]), correct=False,
                               finish_s=float(rng.randint(0, 4)), order=i) for i in indices)
        p = ProblemSamples(f"r{trial}", "1", samples=samples)
        prepared = _Problem.of(p)
        for spec in rule_sets:
            rules = parse_rule_set(spec)
            draw = _replay_draw(prepared, tuple(range(n)), rules, {})
            stop = replay_early_stop([as_candidate(s) for s in samples], rules, MAJORITY)
            assert draw.early_stopped == (stop is not None), (trial, spec, samples)
            if stop is not None:
                assert draw.needed_s == stop.stopped_at_s, (trial, spec, samples)
                ended = [i for i in range(n) if prepared.finish_s[i] <= draw.needed_s]
                assert prepared.vote(ended, MAJORITY) == stop.vote.answer, (trial, spec, samples)


def test_problems_inside_their_allowance_take_their_finish_times_and_score_their_votes():
    problems = [
        problem("a", "1", [("1", 10, 5), ("1", 30, 5), ("2", 20, 5)]),          # right, needs 30 s
        problem("b", "2", [("3", 5, 5), ("3", 15, 5), ("2", 25, 5)]),           # wrong, needs 25 s
        problem("c", "4", [("4", 40, 5), (None, 10, 5), ("5", 35, 5)]),         # tie 4-5, the lower index: right
    ]
    limit = 10_000.0  # every allowance is far beyond 40 s
    result = simulate_competition(problems, time_limit_s=limit, num_samples=3, early_stop="", vote=MAJORITY,
                                  time_policy=[BANK, CLAMP], runs=10, seed=1)
    assert [p["policy"] for p in result["policies"]] == ["bank", "clamp (reserve 20 s, min 20 s, max 100 s)"]
    for policy in result["policies"]:
        assert policy["elapsed_s"]["min"] == policy["elapsed_s"]["max"] == pytest.approx(30 + 25 + 40)
        assert policy["unused_s"]["mean"] == pytest.approx(limit - 95)
        assert policy["scores"] == [2] * 10
        assert policy["two_run_scores"] == [2.0] * 5
        assert policy["cut_by_allowance"]["max"] == 0 and policy["runs_over_limit"] == 0


def test_drawn_candidates_score_the_expected_accuracy():
    # One candidate of two drawn: right half the time, over many runs.
    p = problem("p", "1", [("1", 5, 1), ("2", 5, 1)])
    result = simulate_competition([p], time_limit_s=100.0, num_samples=1, early_stop="", vote=MAJORITY,
                                  time_policy=BANK, runs=400)
    assert result["policies"][0]["accuracy"] == pytest.approx(0.5, abs=0.08)
    assert result["policies"][0]["two_run_score"]["mean"] == pytest.approx(0.5, abs=0.08)


def test_an_early_stop_ends_the_problem_at_its_stop_moment():
    p = problem("p", "7", [("7", 1, 1), ("7", 2, 1), ("3", 50, 1), ("7", 90, 1)])
    result = simulate_competition([p], time_limit_s=1_000.0, num_samples=4, early_stop=["2/2"], vote=MAJORITY,
                                  time_policy=BANK, runs=2)
    (bank,) = result["policies"]
    assert bank["elapsed_s"]["max"] == pytest.approx(2.0)
    assert bank["early_stopped"]["mean"] == 1 and bank["score"]["mean"] == 1


def test_a_too_short_limit_never_lets_a_run_overrun_and_costs_score():
    # Each problem's right answers come late (90-100 s); an early wrong one at 10 s.
    problems = [problem(f"p{i}", "1", [("2", 10, 1), ("1", 90, 1), ("1", 95, 1), ("1", 100, 1)]) for i in range(10)]
    ample = simulate_competition(problems, time_limit_s=5_000.0, num_samples=4, early_stop="", vote=MAJORITY,
                                 time_policy=[BANK, CLAMP], runs=6)
    short_limit = 400.0
    short = simulate_competition(problems, time_limit_s=short_limit, num_samples=4, early_stop="", vote=MAJORITY,
                                 time_policy=[BANK, CLAMP], runs=6, safety_margin_s=10.0, startup_s=30.0)
    for roomy, tight in zip(ample["policies"], short["policies"]):
        assert roomy["score"]["mean"] == 10
        assert tight["elapsed_s"]["max"] <= short_limit - 10.0 + 1e-9
        assert tight["runs_over_limit"] == 0 and tight["overrun_s"]["max"] == 0
        assert tight["cut_by_allowance"]["min"] > 0
        assert tight["score"]["mean"] < roomy["score"]["mean"]


def test_the_same_seed_gives_the_same_result():
    rng = random.Random(0)
    problems = [problem(f"p{i}", "1", [(rng.choice("1123"), rng.uniform(1, 100), rng.randint(1, 50)) for _ in range(8)])
                for i in range(12)]
    kwargs = dict(time_limit_s=600.0, num_samples=5, early_stop="3/3,last:3/4", vote=MAJORITY, time_policy=[BANK, CLAMP],
                  runs=20)
    first = simulate_competition(problems, seed=3, **kwargs)
    assert simulate_competition(problems, seed=3, **kwargs) == first
    assert simulate_competition(problems, seed=4, **kwargs) != first


def test_samples_without_finish_times_are_refused_naming_the_problem():
    timed = problem("timed", "1", [("1", 1.0, 1)])
    untimed = ProblemSamples("untimed-7", "1", samples=(Sample(answer="1", correct=True, order=0),))
    with pytest.raises(ValueError, match="untimed-7"):
        simulate_competition([timed, untimed], time_limit_s=100.0, num_samples=1, early_stop="", vote=MAJORITY,
                             time_policy=BANK)
    with pytest.raises(ValueError, match="untimed-7"):
        early_stop_table([timed, untimed], [], MAJORITY)
    with pytest.raises(ValueError, match="timed.*has 1 samples"):
        simulate_competition([timed], time_limit_s=100.0, num_samples=2, early_stop="", vote=MAJORITY,
                             time_policy=BANK)


def test_plots_are_written(tmp_path):
    problems = [problem(f"p{i}", "1", [("1", 1 + i, 10), ("2", 2, 10), ("1", 3, 10), ("1", 9, 10)]) for i in range(4)]
    plot_early_stop(early_stop_table(problems, ["4/4,last:2/2"], MAJORITY), tmp_path / "early_stop.png")
    result = simulate_competition(problems, time_limit_s=30.0, num_samples=3, early_stop="2/3", vote=MAJORITY,
                                  time_policy=[BANK, CLAMP], runs=8)
    plot_simulation(result, tmp_path / "simulation.png")
    assert (tmp_path / "early_stop.png").stat().st_size > 1000
    assert (tmp_path / "simulation.png").stat().st_size > 1000


def test_an_rm_vote_reads_the_named_score_column():
    # Majority says 2; the reward model's best-scored candidate says 1 (right).
    scored = [("2", 1.0, -1.0), ("2", 2.0, -2.0), ("1", 3.0, 3.0)]
    p = ProblemSamples("p", "1", samples=tuple(
        Sample(answer=a, correct=a == "1", tokens=1, finish_s=t, order=i, scores={"rm_v2": r})
        for i, (a, t, r) in enumerate(scored)))
    rm = VoteConfig(method="rm")
    assert row_for(early_stop_table([p], [], rm, score="rm_v2"), "decided")["full_vote_accuracy"] == 1.0
    assert row_for(early_stop_table([p], [], MAJORITY), "decided")["full_vote_accuracy"] == 0.0
    result = simulate_competition([p], time_limit_s=100.0, num_samples=3, early_stop="", vote=rm, time_policy=BANK,
                                  runs=2, score="rm_v2")
    assert result["policies"][0]["scores"] == [1, 1]
