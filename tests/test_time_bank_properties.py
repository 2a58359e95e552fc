"""Properties of the time bank on a fake clock: it depends on time spent only (not on the
clock's origin), scales with the time available, defaults to no margin and one extra base,
accepts exactly the documented settings, and records and logs what each problem took."""

import logging

import pytest

from kit.kaggle.time_bank import TimeBank
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
                                      dict(limit_s=10.0, num_problems=1, safety_margin_s=9.999)])
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
