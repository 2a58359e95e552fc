"""Properties of the time policies on a fake clock: the time bank depends on time spent only
(not on the clock's origin), scales with the time available, defaults to no margin and one
extra base, accepts exactly the documented settings, and records and logs what each problem
took; both it and the clamp keep the two guarantees of kit/kaggle/time_bank.py's docstring
(the run ends inside its limit; no problem takes the time promised to the ones after it) over
random runs."""

import logging
import random

import pytest

from kit.config import TimePolicyConfig
from kit.kaggle.time_bank import TimeBank, TimeClamp
from test_time_bank import FakeClock

USED = [0.0, 3.0, 0.5, 12.0, 1.0, 0.0, 7.0, 2.0]  # seconds per problem, at scale 1


def allowances(scale: float, origin: float = 0.0, started_at: float | None = 0.0, **kw) -> list[float]:
    clock = FakeClock(now=origin + 5.0 * scale)  # start-up already took 5 s
    bank = TimeBank(40.0 * scale, len(USED), safety_margin_s=2.0 * scale, clock=clock,
                    started_at=None if started_at is None else origin + started_at, **kw)
    out = []
    for i, used in enumerate(USED):
        out.append(bank.allowance())
        clock.now += used * scale
        bank.record(f"p{i}", out[-1], used * scale, 0)
    return out


def test_allowances_do_not_depend_on_the_clock_origin():
    assert allowances(1.0, origin=1000.0) == pytest.approx(allowances(1.0))


def test_allowances_scale_with_the_time_available():
    # Nothing in the bank is a fixed number of seconds: a run with 1/1000 of the time gets
    # 1/1000 of every allowance.
    small = allowances(0.001)
    assert [a * 1000 for a in small] == pytest.approx(allowances(1.0))


def test_the_run_starts_when_the_bank_is_made_by_default():
    clock = FakeClock(now=500.0)
    bank = TimeBank(100.0, 4, clock=clock)
    clock.now += 20.0
    assert bank.elapsed_s() == 20.0


def test_defaults_are_no_margin_and_at_most_one_extra_base():
    clock = FakeClock()
    bank = TimeBank(100.0, 4, started_at=0.0, clock=clock)
    assert bank.allowance() == 25.0  # no safety margin: the fair share of the whole limit
    bank.record("p0", 25.0, 0.0, 0)
    bank.record("p1", 25.0, 0.0, 0)  # both unused: the bank holds 50 s
    assert bank.allowance() == 50.0  # base + one base from the bank, not more


def test_the_bank_is_empty_before_it_opens():
    assert TimeBank(100.0, 4, started_at=0.0, clock=FakeClock(now=30.0)).bank_s() == 0.0


@pytest.mark.parametrize("settings", [dict(limit_s=1e-3, num_problems=1), dict(limit_s=0.5, num_problems=1),
                                      dict(limit_s=10.0, num_problems=2, safety_margin_s=0.0),
                                      dict(limit_s=10.0, num_problems=1, safety_margin_s=9.999),
                                      dict(limit_s=10.0, num_problems=2, max_extra_ratio=0.0)])
def test_every_documented_setting_is_accepted(settings):
    bank = TimeBank(**settings, started_at=0.0, clock=FakeClock())  # raises if refused
    assert 0 < bank.allowance() <= settings["limit_s"]


@pytest.mark.parametrize("settings,field", [(dict(limit_s=10.0, num_problems=0), "num_problems"),
                                            (dict(limit_s=0.0, num_problems=1), "limit_s"),
                                            (dict(limit_s=-1.0, num_problems=1), "limit_s"),
                                            (dict(limit_s=10.0, num_problems=1, safety_margin_s=10.0),
                                             "safety_margin_s"),
                                            (dict(limit_s=10.0, num_problems=1, safety_margin_s=-0.1),
                                             "safety_margin_s")])
def test_settings_outside_their_domain_are_refused_by_name(settings, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        TimeBank(**settings, started_at=0.0, clock=FakeClock())


def test_record_keeps_what_each_problem_took_and_the_bank_after_it(caplog):
    clock = FakeClock()
    bank = TimeBank(100.0, 4, safety_margin_s=10.0, started_at=0.0, clock=clock)
    allowance = bank.allowance()
    clock.now += 5.0
    with caplog.at_level(logging.INFO, logger="kit.kaggle.time_bank"):
        timing = bank.record("p0", allowance, 5.0, "42")
    assert bank.timings == [timing]
    assert (timing.problem_id, timing.allowance_s, timing.used_s, timing.answer) == ("p0", 22.5, 5.0, "42")
    assert timing.bank_after_s == bank.bank_s() == 17.5
    # The log line is the run's only record on Kaggle: every figure, in this order.
    assert caplog.messages == ["time bank: p0 answered 42 in 5.0 s of 22.5 s allowed; bank +17.5 s, "
                               "85 s spendable, 3 to go"]


# --- both guarantees, both policies, random runs ---------------------------------------
SLACK_S = 30.0  # what a solver may overrun its allowance by


def random_run(rng: random.Random, kind: str):
    """A budget with random settings after a random start-up, its clock, the limit it must
    keep (limit - margin) and the problems it will be sent (some more than announced)."""
    limit = rng.uniform(1_000.0, 20_000.0)
    problems = rng.randint(1, 60)
    margin = rng.uniform(0.0, 0.1 * limit)
    cap = rng.choice([None, rng.uniform(50.0, 2_000.0)])
    clock = FakeClock(now=rng.uniform(0.0, 0.3 * limit))
    common = dict(safety_margin_s=margin, per_call_cap_s=cap, started_at=0.0, clock=clock)
    if kind == "clamp":
        low = rng.uniform(0.0, 600.0)
        policy = TimePolicyConfig("clamp", rng.uniform(0.0, 600.0), low, low + rng.uniform(0.0, 1_200.0))
        budget = TimeClamp(limit, problems, policy, **common)
    else:
        budget = TimeBank(limit, problems, max_extra_ratio=rng.choice([0.5, 1.0, 3.0]), **common)
    return budget, clock, limit - margin, problems + rng.randint(0, 5)


@pytest.mark.parametrize("kind", ["bank", "clamp"])
@pytest.mark.parametrize("seed", range(40))
def test_the_run_ends_inside_its_limit_whatever_the_problems_take(kind, seed):
    rng = random.Random(seed)
    budget, clock, deadline, sent = random_run(rng, kind)
    for i in range(sent):
        allowance = budget.allowance()
        # Early stop, the full allowance, or an overrun by the solver's slack; a problem
        # given nothing is answered with the fallback, unsolved (Submission.answer).
        used = rng.choice([0.0, rng.random() * allowance, allowance, allowance + rng.uniform(0.0, SLACK_S)])
        used = used if allowance > 0 else 0.0
        clock.now += used
        budget.record(f"p{i}", allowance, used, 0)
        assert allowance == 0 or clock.now <= deadline + SLACK_S + 1e-6, (i, budget.timings)


@pytest.mark.parametrize("kind", ["bank", "clamp"])
@pytest.mark.parametrize("seed", range(40))
def test_no_problem_takes_the_time_promised_to_the_ones_after_it(kind, seed):
    # While every problem keeps to its allowance, each announced one gets at least the
    # promise (min_s; the bank's base) or the fair share of what the first one found.
    rng = random.Random(seed)
    budget, clock, _, _ = random_run(rng, kind)
    fair = max(0.0, budget.spendable_s()) / budget.num_problems
    allowances = []
    for i in range(budget.num_problems):
        allowances.append(budget.allowance())
        used = allowances[-1] * rng.choice([0.0, rng.random(), 1.0])
        clock.now += used
        budget.record(f"p{i}", allowances[-1], used, 0)
    floor = min(budget.promised_s(), fair, budget.per_call_cap_s or float("inf"))
    assert min(allowances) >= floor - 1e-6, (floor, allowances)
