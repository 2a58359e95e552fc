"""The training rows ``train select`` builds from one problem's judged traces: RFT SFT chats,
DPO / reward-model preference pairs and KTO rows, all in TRL's conversational formats (a
``prompt`` list of messages; ``completion``, or ``chosen`` and ``rejected``, one assistant message).

Every pair is made of two traces of one problem, and its chosen trace ranks above its rejected
one in the preference order of :mod:`train.quality` (2 well-formed correct > 1 correct but not
clean > 0 wrong), except a length pair: two well-formed correct traces where the rejected one
is at least ``length_ratio`` times longer (AIMO-2's 2nd place: prefer the shorter correct
solution, which is faster under the time limit). Pair kinds:

* ``correct_wrong``: a correct trace (the best rank there is) against a wrong one;
* ``length``: shorter correct against longer correct;
* ``language``: well-formed correct against correct but mixed-language.

Traces are paired round-robin so that each distinct trace is used about as often as the others,
at most ``max_pairs`` pairs per problem and kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice

from train.quality import rank

PAIR_KINDS = ("correct_wrong", "length", "language")


@dataclass(frozen=True)
class Trace:
    """One judged trace of a problem: a sampled candidate, or the data's reference solution."""

    candidate: str  # where it comes from: "SAMPLE_DIR:seed:index", or "reference"
    text: str
    tokens: int | None  # generated tokens (None for a reference solution: not sampled)
    correct: bool
    path_key: str  # train.diversity's key: equal keys are one solution path
    well_formed: bool = True  # train.quality.is_well_formed (or the format filter is off)
    mixed_language: bool = False  # train.quality.is_mixed_language (and that filter is on)
    reward_ok: bool = True  # its reward-model score passes the threshold (or there is none)

    @property
    def clean(self) -> bool:
        return self.well_formed and not self.mixed_language and self.reward_ok

    @property
    def rank(self) -> int:
        return rank(self.correct, self.clean)


def _round_robin(first: list[Trace], second: list[Trace], max_pairs: int) -> list[tuple[Trace, Trace]]:
    """Pairs of one trace of ``first`` and one of ``second``, walking both lists in step so that
    every trace of the longer list gets a partner before any trace gets a second one."""
    if not first or not second:
        return []
    count = min(max_pairs, len(first) * len(second))
    pairs, seen = [], set()
    shift = 0
    while len(pairs) < count:
        for i in range(max(len(first), len(second))):
            a, b = i % len(first), (i + shift) % len(second)
            if (a, b) not in seen:
                seen.add((a, b))
                pairs.append((first[a], second[b]))
                if len(pairs) == count:
                    break
        shift += 1
    return pairs


def correct_wrong_pairs(chosen: list[Trace], wrong: list[Trace], max_pairs: int) -> list[tuple[Trace, Trace]]:
    """Correct traces against wrong ones; ``chosen`` holds the best-ranked correct traces."""
    return _round_robin(chosen, wrong, max_pairs)


def length_pairs(correct: list[Trace], length_ratio: float, max_pairs: int) -> list[tuple[Trace, Trace]]:
    """The shortest correct traces against the longest, where the longer has at least
    ``length_ratio`` times the tokens (references, without a token count, take no part)."""
    measured = sorted((t for t in correct if t.tokens), key=lambda t: (t.tokens, t.candidate))
    pairs = []
    for short, long in zip(measured, reversed(measured)):
        if long.tokens < length_ratio * short.tokens:
            break  # the lists meet in the middle: every later pair is closer in length
        pairs.append((short, long))
    return list(islice(pairs, max_pairs))


def language_pairs(clean: list[Trace], mixed: list[Trace], max_pairs: int) -> list[tuple[Trace, Trace]]:
    return _round_robin(clean, mixed, max_pairs)


def assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def pair_row(problem_id: str, prompt: list[dict], chosen: Trace, rejected: Trace, kind: str) -> dict:
    return {"prompt": prompt, "chosen": assistant(chosen.text), "rejected": assistant(rejected.text),
            "problem_id": problem_id, "kind": kind, "chosen_candidate": chosen.candidate,
            "rejected_candidate": rejected.candidate}


def sft_row(problem_id: str, prompt: list[dict], trace: Trace) -> dict:
    return {"prompt": prompt, "completion": assistant(trace.text), "problem_id": problem_id,
            "candidate": trace.candidate}


def kto_row(problem_id: str, prompt: list[dict], trace: Trace, label: bool) -> dict:
    return {**sft_row(problem_id, prompt, trace), "label": label}
