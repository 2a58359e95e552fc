"""The arithmetic of both time policies on a fake clock: the time bank, and the clamp (AIMO-3's
winners) at AIMO-3's figures. Their guarantees: test_time_bank_properties.py."""

import logging

import pytest

from kit.config import TimePolicyConfig
from kit.kaggle.time_bank import TimeBank, TimeBudget, TimeClamp, make_time_budget


class FakeClock:
    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_bank(clock, limit=1000.0, problems=10, margin=100.0, **kw) -> TimeBank:
    return TimeBank(limit, problems, safety_margin_s=margin, started_at=0.0, clock=clock, **kw)


def spend(bank: TimeBudget, clock: FakeClock, seconds: float, pid: str = "p") -> float:
    """One problem that takes ``seconds``; its allowance."""
    allowance = bank.allowance()
    clock.now += seconds
    bank.record(pid, allowance, seconds, 0)
    return allowance


def test_first_allowance_is_the_fair_share_of_what_is_left_after_start_up():
    clock = FakeClock(now=100.0)  # start-up and model load already took 100 s
    bank = make_bank(clock)
    assert bank.allowance() == pytest.approx((1000 - 100 - 100) / 10)


def test_unused_time_returns_to_the_bank_and_the_next_problem_may_draw_it():
    clock = FakeClock()
    bank = make_bank(clock)  # base 90 s
    spend(bank, clock, 30.0)  # 60 s unused
    assert bank.bank_s() == pytest.approx(60.0)
    assert bank.allowance() == pytest.approx(90.0 + 60.0)


def test_extra_drawn_from_the_bank_is_capped():
    clock = FakeClock()
    bank = make_bank(clock, max_extra_ratio=0.5)
    for _ in range(3):
        spend(bank, clock, 0.0)  # 270 s in the bank
    assert bank.allowance() == pytest.approx(90.0 + 45.0)


def test_an_overrun_is_spread_over_the_remaining_problems():
    clock = FakeClock()
    bank = make_bank(clock)
    spend(bank, clock, 180.0)  # 90 s over
    assert bank.bank_s() == pytest.approx(-90.0)
    assert bank.allowance() == pytest.approx((900 - 180) / 9)


def test_the_per_call_cap_bounds_every_allowance():
    clock = FakeClock()
    bank = make_bank(clock, per_call_cap_s=50.0)
    assert bank.allowance() == 50.0


def test_out_of_time_gives_zero():
    clock = FakeClock()
    bank = make_bank(clock)
    clock.now = 950.0  # past limit - margin
    assert bank.allowance() == 0.0


def test_more_problems_than_announced_still_get_the_time_that_is_left():
    clock = FakeClock()
    bank = make_bank(clock, problems=2, margin=0.0)
    spend(bank, clock, 100.0)
    spend(bank, clock, 100.0)
    assert bank.allowance() == pytest.approx(800.0)


def test_every_problem_keeps_at_least_its_base_when_earlier_ones_were_on_time():
    clock = FakeClock()
    bank = make_bank(clock, max_extra_ratio=10.0)
    spend(bank, clock, 0.0)
    first_draw = spend(bank, clock, 0.0)  # draws the whole bank: 90 + 90
    assert first_draw == pytest.approx(180.0)
    assert bank.allowance() >= 90.0 - 1e-9


@pytest.mark.parametrize("kwargs, field", [
    ({"num_problems": 0}, "num_problems"),
    ({"limit_s": 0}, "limit_s"),
    ({"safety_margin_s": 2000}, "safety_margin_s"),
    ({"max_extra_ratio": -0.5}, "max_extra_ratio"),
])
def test_bad_settings_are_refused_naming_the_field(kwargs, field):
    args = {"limit_s": 1000.0, "num_problems": 10, "safety_margin_s": 10.0} | kwargs
    with pytest.raises(ValueError, match=field):
        TimeBank(**args)


# --- the clamp ----------------------------------------------------------------------------
AIMO3 = TimePolicyConfig(kind="clamp", reserve_s=300.0, min_s=300.0, max_s=900.0)


def clamp(clock, limit=17_400.0, problems=50, policy=AIMO3, **kw) -> TimeClamp:
    return TimeClamp(limit, problems, policy, started_at=0.0, clock=clock, **kw)


# AIMO-3: 17,400 s, 50 problems, reserve = min = 300 s, max 900 s. After k problems of t s
# each: time left L = 17,400 - k t, problems left r = 50 - k, raw = L - 300 (r - 1).
@pytest.mark.parametrize("k, t, expected", [
    (0, 0.0, 900.0),  # raw 17,400 - 14,700 = 2,700: the max
    (3, 900.0, 900.0),  # raw 14,700 - 13,800 = 900
    (4, 900.0, 300.0),  # raw 13,800 - 13,500 = 300
    (10, 400.0, 900.0),  # raw 13,400 - 11,700 = 1,700: the max
    (10, 500.0, 700.0),  # raw 12,400 - 11,700 = 700
    (10, 600.0, 285.0),  # raw -300 would clamp to 300 s, but 40 problems share 11,400 s: 285 each
    (10, 900.0, 210.0),  # in debt likewise: 8,400 s / 40
    (49, 300.0, 900.0),  # the last problem: raw = L = 2,700, the max
    (49, 340.0, 740.0),  # the last problem: L = 740
])
def test_the_clamp_at_aimo3s_figures(k, t, expected):
    clock = FakeClock()
    budget = clamp(clock)
    for _ in range(k):
        spend(budget, clock, t)
    assert budget.allowance() == pytest.approx(expected)


def test_a_run_that_takes_every_allowance_gets_the_winners_schedule_and_ends_on_the_limit():
    clock = FakeClock()
    budget = clamp(clock)
    allowances = [budget.allowance()]
    for i in range(50):
        clock.now += allowances[-1]
        budget.record(f"p{i}", allowances[-1], allowances[-1], 0)
        allowances.append(budget.allowance())
    assert allowances[:50] == pytest.approx([900.0] * 4 + [300.0] * 46)
    assert clock.now == pytest.approx(17_400.0)
    assert allowances[50] == 0.0  # a 51st problem: nothing left


def test_the_min_clamp_gives_min_s_when_the_reserve_is_spent_but_time_is_left():
    clock = FakeClock()
    # raw = 3,500 - 400 * 9 = -100; 300 s is kept for each of the 9 after it: 800 s could go.
    budget = clamp(clock, limit=3_500.0, problems=10, policy=TimePolicyConfig("clamp", 400.0, 300.0, 900.0))
    assert budget.allowance() == pytest.approx(300.0)


def test_the_max_clamp_bounds_a_problem_however_much_is_left():
    clock = FakeClock()
    budget = clamp(clock, policy=TimePolicyConfig("clamp", reserve_s=0.0, min_s=0.0, max_s=900.0))
    assert budget.allowance() == 900.0


def test_min_s_never_exceeds_what_is_left():
    clock = FakeClock(now=17_200.0)  # 200 s left for the single problem
    assert clamp(clock, problems=1).allowance() == pytest.approx(200.0)


def test_a_min_s_that_cannot_be_kept_for_everyone_becomes_the_fair_share():
    clock = FakeClock()
    budget = clamp(clock, policy=TimePolicyConfig("clamp", 300.0, min_s=600.0, max_s=900.0))
    assert budget.allowance() == pytest.approx(17_400.0 / 50)  # 50 x 600 s do not fit in 17,400 s


def test_start_up_and_the_model_load_are_time_spent():
    clock = FakeClock(now=3_000.0)  # raw = 14,400 - 14,700 < 300: the fair share 288 s
    assert clamp(clock).allowance() == pytest.approx(14_400.0 / 50)


def test_more_problems_than_announced_get_what_is_left_within_the_clamp():
    clock = FakeClock()
    budget = clamp(clock, limit=2_000.0, problems=2)
    spend(budget, clock, 100.0)
    spend(budget, clock, 100.0)
    assert budget.allowance() == 900.0  # 1,800 s left, one problem "to go": the max
    spend(budget, clock, 1_600.0)
    assert budget.allowance() == pytest.approx(200.0)  # below min_s: only what is left
    spend(budget, clock, 200.0)
    assert budget.allowance() == 0.0


def test_the_per_call_cap_bounds_the_clamp():
    assert clamp(FakeClock(), per_call_cap_s=500.0).allowance() == 500.0


def test_record_logs_the_clamps_figures(caplog):
    clock = FakeClock()
    budget = clamp(clock, limit=2_000.0, problems=4, safety_margin_s=100.0)
    allowance = budget.allowance()  # raw 1,900 - 900 = 1,000: the max, 900
    clock.now += 400.0
    with caplog.at_level(logging.INFO, logger="kit.kaggle.time_bank"):
        timing = budget.record("p0", allowance, 400.0, 42)
    # bank: spendable beyond min_s for each of the 3 to come.
    assert timing.bank_after_s == budget.bank_s() == pytest.approx(1_500.0 - 3 * 300.0)
    assert caplog.messages == ["time clamp: p0 answered 42 in 400.0 s of 900.0 s allowed; bank +600.0 s, "
                               "1500 s spendable, 3 to go"]


def test_the_reserve_not_min_s_decides_what_the_clamp_wants():
    clock = FakeClock()
    # raw = 2,500 - 200 x 9 = 700; 100 s kept for each of the 9 after it would let 1,600 s go.
    budget = clamp(clock, limit=2_500.0, problems=10, policy=TimePolicyConfig("clamp", 200.0, 100.0, 900.0))
    assert budget.allowance() == pytest.approx(700.0)


def test_the_policy_is_chosen_by_its_kind_and_gets_the_runs_figures():
    figures = dict(limit_s=17_400.0, num_problems=50, safety_margin_s=600.0, per_call_cap_s=800.0, started_at=50.0,
                   clock=FakeClock(now=100.0))
    bank = make_time_budget(TimePolicyConfig(), **figures)
    assert type(bank) is TimeBank
    assert bank.allowance() == pytest.approx((17_400.0 - 600.0 - 50.0) / 50)
    clamped = make_time_budget(AIMO3, **figures)
    assert type(clamped) is TimeClamp
    assert clamped.allowance() == 800.0  # the clamp's 900 s, under the per-call cap


def test_the_clamp_refuses_bad_run_figures_by_name():
    with pytest.raises(ValueError, match="^num_problems:"):
        TimeClamp(100.0, 0, AIMO3)
