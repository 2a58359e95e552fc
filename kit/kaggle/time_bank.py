"""Per-problem allowances that keep a whole competition run inside its limit: the time bank
(the default) or the AIMO-3 winners' clamp, chosen by ``KitConfig.time_policy``.

Both policies read the same figures. Measured on the clock:

- ``spendable`` S = limit - safety margin - time spent so far (start-up and the model load
  included, since the first Kaggle call loads the model), read when a problem asks.

Counted: ``remaining`` r = problems announced less problems recorded, at least 1 (a gateway
that sends more problems than announced gets, for each extra one, the rule of a last problem:
what is spendable, within the policy's own bounds). Fixed: the limit, the margin, the
per-call cap and the policy's settings.

A policy proposes what a problem *wants*, and *promises* each problem a number of seconds p:

- **bank**: p = ``base`` = S at the first allowance / num_problems; a problem wants
  ``(1 + max_extra_ratio) * base``. The *bank* is what earlier problems left unused,
  ``bank = S - r * base`` (negative when they overran), and the shared bound below makes the
  allowance ``base + min(bank, max_extra_ratio * base)`` when the bank is positive (early stop
  on easy problems pays for hard ones: the bound is then ``S - (r - 1) * base = base + bank``)
  and the fair share ``S / r`` when it is negative (the debt is spread over the remaining
  problems, not dumped on one).
- **clamp** (AIMO-3's winners): p = ``min_s``; a problem wants
  ``clamp(S - reserve_s * (r - 1), min_s, max_s)``. At AIMO-3's figures (17,400 s, 50
  problems, reserve = min = 300 s, max 900 s) that is 900 s each while the reserve allows,
  then 300 s each.

One rule, shared, then bounds every allowance (``TimeBudget.allowance``):

    allowance = max(0, min(wanted, S - (r - 1) * min(p, S / r), per_call_cap_s))

(the per-call cap is the gateway's response timeout less its margin).

Guarantee 1, the limit (given a solver that ends a problem within its allowance plus some
slack ``s``): the run ends by ``limit - safety_margin + s``, whatever the model does. Proof:
p >= 0, so for S >= 0 the shared bound is at most S, and for S < 0 it is S / r < 0; so an
allowance never exceeds max(0, S). A problem given a > 0 starts with S > 0 spendable and ends
by elapsed + a + s <= elapsed + S + s = limit - margin + s. A problem given 0 is not solved
(``Submission`` answers the fallback at once), so only those answered after the time ran out
add anything past that bound, and only their bookkeeping. The raw clamp alone does not keep
this: ``min_s`` can exceed what is left.

Guarantee 2, the problems after this one: a problem never takes what is promised to the
r - 1 after it, m = min(p, S / r) each (p when S holds it for everyone, else the fair share):
S - allowance >= (r - 1) * m. So when every problem keeps to its allowance, the next one finds
S' >= (r - 1) * m, hence its own m' >= m, and it gets at least min(m', per_call_cap_s) (its
bound is >= m', and both policies want at least p): every problem gets at least
min(p, S at the first allowance / num_problems, per_call_cap_s). Capping at S alone would keep
guarantee 1 but let the clamp's ``min_s`` eat the time of the last problems, which would then
answer the fallback unsolved; with this bound a debt (S < r * p: the load or overruns took
more than the promises left room for) is spread over the remaining problems, not dumped on
the last ones. Out of debt with ``min_s <= reserve_s`` (AIMO-3's settings) the bound never
binds, and the clamp gives exactly the winners' allowances; in debt it gives S / r where the
winners' gave ``min_s``.

Neither stops a solver that ignores its allowance: the kit's deadline does that.
"""

from __future__ import annotations

import abc
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from kit.config import TimePolicyConfig

log = logging.getLogger(__name__)


@dataclass
class ProblemTiming:
    problem_id: str
    allowance_s: float
    used_s: float
    answer: object
    bank_after_s: float


class TimeBudget(abc.ABC):
    """What both policies share: the clock, what is spendable, the bound every allowance
    keeps, and the record and log of each problem. A policy defines ``wanted_s`` and
    ``promised_s`` (the module docstring)."""

    kind = ""  # the TimePolicyConfig.kind this class implements, as logged

    def __init__(self, limit_s: float, num_problems: int, safety_margin_s: float, per_call_cap_s: float | None,
                 started_at: float | None, clock: Callable[[], float]):
        """``started_at``: the clock reading when the run began (the notebook's first cell);
        None: now. ``per_call_cap_s``: the most one problem may take (None: no cap)."""
        if num_problems < 1:
            raise ValueError(f"num_problems: must be at least 1, got {num_problems}")
        if limit_s <= 0:
            raise ValueError(f"limit_s: must be positive, got {limit_s}")
        if not 0 <= safety_margin_s < limit_s:
            raise ValueError(f"safety_margin_s: must be in [0, limit_s), got {safety_margin_s}")
        self.limit_s = limit_s
        self.num_problems = num_problems
        self.safety_margin_s = safety_margin_s
        self.per_call_cap_s = per_call_cap_s
        self.clock = clock
        self.started_at = clock() if started_at is None else started_at
        self.timings: list[ProblemTiming] = []

    @property
    def done(self) -> int:
        return len(self.timings)

    @property
    def remaining(self) -> int:
        """Problems still to answer (at least 1: a gateway may send more than announced)."""
        return max(1, self.num_problems - self.done)

    def elapsed_s(self) -> float:
        return self.clock() - self.started_at

    def spendable_s(self) -> float:
        return self.limit_s - self.safety_margin_s - self.elapsed_s()

    @abc.abstractmethod
    def wanted_s(self, spendable: float) -> float:
        """What the policy would give the next problem, before the shared bound."""

    @abc.abstractmethod
    def promised_s(self) -> float | None:
        """Seconds the policy promises each problem; None before it has any (the bank before
        it opens)."""

    def bank_s(self) -> float:
        """Spendable beyond the promises to the problems still to come (0 before any promise)."""
        promised = self.promised_s()
        if promised is None:
            return 0.0
        return self.spendable_s() - self.remaining * promised

    def allowance(self) -> float:
        """Seconds the next problem may take; 0 when the run is out of time."""
        spendable = self.spendable_s()
        wanted = self.wanted_s(spendable)  # first: the bank sets its promise (base) here
        remaining = self.remaining
        kept_for_the_rest = (remaining - 1) * min(self.promised_s(), spendable / remaining)
        cap = math.inf if self.per_call_cap_s is None else self.per_call_cap_s
        return max(0.0, min(wanted, spendable - kept_for_the_rest, cap))

    def record(self, problem_id: str, allowance_s: float, used_s: float, answer: object) -> ProblemTiming:
        timing = ProblemTiming(problem_id, allowance_s, used_s, answer, 0.0)
        self.timings.append(timing)
        timing.bank_after_s = self.bank_s()
        log.info("time %s: %s answered %s in %.1f s of %.1f s allowed; bank %+.1f s, %.0f s spendable, %d to go",
                 self.kind, problem_id, answer, used_s, allowance_s, timing.bank_after_s, self.spendable_s(),
                 self.num_problems - self.done)
        return timing


class TimeBank(TimeBudget):
    """A fair share of the time, plus what earlier problems left unused."""

    kind = "bank"

    def __init__(self, limit_s: float, num_problems: int, safety_margin_s: float = 0.0,
                 max_extra_ratio: float = 1.0, per_call_cap_s: float | None = None,
                 started_at: float | None = None, clock: Callable[[], float] = time.monotonic):
        """``max_extra_ratio``: a problem may draw at most this many base allowances from the
        bank on top of its own."""
        super().__init__(limit_s, num_problems, safety_margin_s, per_call_cap_s, started_at, clock)
        if max_extra_ratio < 0:
            raise ValueError(f"max_extra_ratio: must be >= 0, got {max_extra_ratio}")
        self.max_extra_ratio = max_extra_ratio
        self.base_s: float | None = None  # set when the bank opens (first allowance)

    def promised_s(self) -> float | None:
        return self.base_s

    def wanted_s(self, spendable: float) -> float:
        if self.base_s is None:
            self.base_s = max(0.0, spendable) / self.num_problems
        return (1.0 + self.max_extra_ratio) * self.base_s  # the shared bound keeps it to base + bank


class TimeClamp(TimeBudget):
    """AIMO-3's winners: clamp(time left - reserve_s * (problems left - 1), min_s, max_s)."""

    kind = "clamp"

    def __init__(self, limit_s: float, num_problems: int, policy: TimePolicyConfig,
                 safety_margin_s: float = 0.0, per_call_cap_s: float | None = None,
                 started_at: float | None = None, clock: Callable[[], float] = time.monotonic):
        """``policy``: reserve_s, min_s and max_s (validated by TimePolicyConfig)."""
        super().__init__(limit_s, num_problems, safety_margin_s, per_call_cap_s, started_at, clock)
        self.policy = policy

    def promised_s(self) -> float:
        return self.policy.min_s

    def wanted_s(self, spendable: float) -> float:
        raw = spendable - self.policy.reserve_s * (self.remaining - 1)
        return min(max(raw, self.policy.min_s), self.policy.max_s)


def make_time_budget(policy: TimePolicyConfig, limit_s: float, num_problems: int, safety_margin_s: float,
                     per_call_cap_s: float | None, started_at: float | None,
                     clock: Callable[[], float] = time.monotonic) -> TimeBudget:
    """The policy ``policy.kind`` names, over the run's figures (the arguments of ``TimeBudget``)."""
    common = dict(limit_s=limit_s, num_problems=num_problems, safety_margin_s=safety_margin_s,
                  per_call_cap_s=per_call_cap_s, started_at=started_at, clock=clock)
    if policy.kind == "clamp":
        return TimeClamp(policy=policy, **common)
    return TimeBank(**common)
