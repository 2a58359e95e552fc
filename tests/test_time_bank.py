"""The time bank's arithmetic, on a fake clock."""

import random

import pytest

from kit.kaggle.time_bank import TimeBank


class FakeClock:
    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_bank(clock, limit=1000.0, problems=10, margin=100.0, **kw) -> TimeBank:
    return TimeBank(limit, problems, safety_margin_s=margin, started_at=0.0, clock=clock, **kw)


def spend(bank: TimeBank, clock: FakeClock, seconds: float, pid: str = "p") -> float:
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


@pytest.mark.parametrize("seed", range(20))
def test_a_run_that_keeps_to_its_allowances_ends_inside_the_limit(seed):
    rng = random.Random(seed)
    clock = FakeClock(now=rng.uniform(0, 200))
    bank = make_bank(clock, limit=5000.0, problems=50, margin=300.0, max_extra_ratio=rng.choice([0.5, 1.0, 3.0]))
    slack = 2.0  # what a solver may overrun its deadline by
    for i in range(50):
        allowance = bank.allowance()
        used = rng.choice([0.05, 0.3, 1.0]) * allowance + rng.uniform(0, slack)
        clock.now += used
        bank.record(f"p{i}", allowance, used, 0)
    assert clock.now <= 5000.0 - 300.0 + 50 * slack


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
])
def test_bad_settings_are_refused_naming_the_field(kwargs, field):
    args = {"limit_s": 1000.0, "num_problems": 10, "safety_margin_s": 10.0} | kwargs
    with pytest.raises(ValueError, match=field):
        TimeBank(**args)
