"""Generative selection (GenSelect: NVIDIA's AIMO-2 write-up, arXiv 2504.16891, and NeMo-Skills):
after the vote, the policy model reads one solution per distinct answer and names the best.

Each distinct answer is shown once, by its shortest solution (the candidate that generated the
fewest tokens), cut to ``genselect.solution_chars`` (head and tail kept: the tail holds the
answer); solutions are numbered in the vote's ranking. The model ends with ``Judgment: N``; the
last such line counts. Its pick is the answer (``mode: override``), or breaks a tie at the top
of the vote (``tiebreak``). Time-guarded by the caller (``kit.sctir.ProblemRun``): started only
with ``reserve_s`` left before the deadline and cancelled at it, the vote then standing. An
unparsable or out-of-range judgment also leaves the vote standing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kit.config import GenSelectConfig
from kit.tir import truncate_output
from kit.voting import VoteResult

PROMPT = """You will be given a math problem and {n} candidate solutions, each with a different final answer. \
At most one of them is correct. Check each solution's reasoning and computations carefully, find the errors, \
and decide which solution is correct (the most likely one if you are unsure). Do not solve the problem from scratch.
End your reply with a line "Judgment: N", where N is the number of the best solution.

Problem:
{problem}

{solutions}"""

_JUDGMENT = re.compile(r"Judgment:\s*\**\s*(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class Choice:
    """One distinct answer as GenSelect shows it."""

    answer: str
    candidate: int  # the candidate whose solution is shown
    solution: str


def choices(vote: VoteResult, solutions: dict[str, list[tuple[int, int, str]]], max_chars: int) -> list[Choice]:
    """One choice per answer of ``vote`` (its ranking): the shortest of its ``solutions``
    (answer -> (tokens, candidate index, text)), cut to ``max_chars``."""
    picked = []
    for answer in vote.table:
        tokens, index, text = min(solutions[answer])
        picked.append(Choice(answer, index, truncate_output(text, max_chars)))
    return picked


def prompt(problem: str, options: list[Choice]) -> str:
    shown = "\n\n".join(f"Solution {i}:\n{c.solution}" for i, c in enumerate(options, start=1))
    return PROMPT.format(n=len(options), problem=problem.strip(), solutions=shown)


def parse_judgment(text: str, n: int) -> int | None:
    """The 0-based choice the model named (its last ``Judgment: N``), None if none or out of range."""
    found = _JUDGMENT.findall(text)
    pick = int(found[-1]) - 1 if found else -1
    return pick if 0 <= pick < n else None


def applies(vote: VoteResult, cfg: GenSelectConfig) -> bool:
    """Whether there is something to select: two answers or more, and (tiebreak) a tie at the top."""
    if len(vote.table) < 2:
        return False
    if cfg.mode == "override":
        return True
    top = list(vote.weights.values() or vote.table.values())
    return top[0] == top[1]


def decide(vote: VoteResult, options: list[Choice], pick: int | None, cfg: GenSelectConfig) -> str | None:
    """The answer GenSelect's ``pick`` makes, None when it leaves the vote standing."""
    if pick is None:
        return None
    answer = options[pick].answer
    if cfg.mode == "tiebreak":
        weights = list((vote.weights or vote.table).items())
        tied = {a for a, w in weights if w == weights[0][1]}
        return answer if answer in tied else None
    return answer
