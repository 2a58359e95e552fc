"""A candidate's confidence, from the top-k logprobs vLLM returns with each sampled token.

A token's entropy is ``-sum(p * log p)`` over the top-k alternatives vLLM returns for its
position (their probabilities are not renormalised: the mass outside the top k is left out,
as the AIMO-3 pipelines computed it). A confident candidate has a low mean entropy.
``EntropyTrace`` keeps a candidate's running mean and its last ``tail_tokens`` entropies,
so a 65k-token candidate costs a few hundred floats, not a list of every token.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable


def token_entropy(logprobs: Iterable[float]) -> float:
    """Entropy (nats) of one position from the logprobs of its top-k alternatives."""
    return -sum(math.exp(lp) * lp for lp in logprobs if lp > -math.inf)


class EntropyTrace:
    """Per-token entropies of one candidate, recorded as it generates."""

    def __init__(self, tail_tokens: int):
        self.total = 0.0
        self.tokens = 0
        self.tail: deque[float] = deque(maxlen=tail_tokens)

    def add(self, entropies: Iterable[float]) -> None:
        for h in entropies:
            self.total += h
            self.tokens += 1
            self.tail.append(h)

    def mean(self) -> float | None:
        """Mean entropy over every token recorded; None when none was."""
        return self.total / self.tokens if self.tokens else None

    def tail_mean(self) -> float | None:
        """Mean entropy over the last ``tail_tokens`` tokens; None when none was recorded."""
        return sum(self.tail) / len(self.tail) if self.tail else None
