"""The time bank: per-problem allowances that keep a whole run inside its limit.

Guarantee (given a solver that ends a problem within its allowance plus some slack ``s``):
the run ends by ``limit - safety_margin + s``, whatever the model does. Every figure is
computed from the clock (time already spent), never from estimates:

- ``spendable`` = limit - safety margin - time spent so far (start-up and the model load
  included, since the first Kaggle call loads the model);
- the *base* allowance is the fair share of what was spendable when the bank opened:
  ``base = spendable_at_open / num_problems``;
- the *bank* is what earlier problems left unused: ``bank = spendable - remaining * base``
  (negative when they overran);
- a problem gets ``base + min(bank, max_extra)`` when the bank is positive (early stop on
  easy problems pays for hard ones), or its fair share ``spendable / remaining`` when it
  is negative (the debt is spread over the remaining problems, not dumped on one);
- never more than ``per_call_cap_s`` (the gateway's response timeout less its margin).

Because ``base + bank = spendable - (remaining - 1) * base``, an allowance never eats the
base of the problems after it, and the sum of all allowances never exceeds ``spendable``.
It does not stop a solver that ignores its allowance: the kit's deadline does that.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class ProblemTiming:
    problem_id: str
    allowance_s: float
    used_s: float
    answer: object
    bank_after_s: float


class TimeBank:
    def __init__(
        self,
        limit_s: float,
        num_problems: int,
        safety_margin_s: float = 0.0,
        max_extra_ratio: float = 1.0,
        per_call_cap_s: float | None = None,
        started_at: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        """``started_at``: the clock reading when the run began (the notebook's first cell);
        default now. ``max_extra_ratio``: a problem may draw at most this many base
        allowances from the bank on top of its own."""
        if num_problems < 1:
            raise ValueError(f"num_problems: must be at least 1, got {num_problems}")
        if limit_s <= 0:
            raise ValueError(f"limit_s: must be positive, got {limit_s}")
        if not 0 <= safety_margin_s < limit_s:
            raise ValueError(f"safety_margin_s: must be in [0, limit_s), got {safety_margin_s}")
        self.limit_s = limit_s
        self.num_problems = num_problems
        self.safety_margin_s = safety_margin_s
        self.max_extra_ratio = max_extra_ratio
        self.per_call_cap_s = per_call_cap_s
        self.clock = clock
        self.started_at = clock() if started_at is None else started_at
        self.base_s: float | None = None  # set when the bank opens (first allowance)
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

    def bank_s(self) -> float:
        if self.base_s is None:
            return 0.0
        return self.spendable_s() - self.remaining * self.base_s

    def allowance(self) -> float:
        """Seconds the next problem may take; 0 when the run is out of time."""
        spendable = self.spendable_s()
        if self.base_s is None:
            self.base_s = max(0.0, spendable) / self.num_problems
        bank = spendable - self.remaining * self.base_s
        if bank >= 0:
            allowance = self.base_s + min(bank, self.max_extra_ratio * self.base_s)
        else:
            allowance = spendable / self.remaining
        if self.per_call_cap_s is not None:
            allowance = min(allowance, self.per_call_cap_s)
        return max(0.0, allowance)

    def record(self, problem_id: str, allowance_s: float, used_s: float, answer: object) -> ProblemTiming:
        timing = ProblemTiming(problem_id, allowance_s, used_s, answer, 0.0)
        self.timings.append(timing)
        timing.bank_after_s = self.bank_s()
        log.info("time bank: %s answered %s in %.1f s of %.1f s allowed; bank %+.1f s, %.0f s spendable, %d to go",
                 problem_id, answer, used_s, allowance_s, timing.bank_after_s, self.spendable_s(),
                 self.num_problems - self.done)
        return timing
