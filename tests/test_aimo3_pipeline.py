"""The AIMO-3 winners' pipeline at competition scale, on the scripted Harmony engine: the
``aimo3-gptoss120b-h100`` config as shipped (Harmony tool calls, N=8, first-answer stop, ``4/8``
early stop, the entropy vote, the clamp time policy) with only its times scaled down, served
through ``Submission`` for 50 problems in a row with the real executor pool. The real engine
runs the Harmony path in test_harmony_engine.py (a tiny random gpt-oss); no GPU here.

Problem ``q<i>`` has the answer ``7 * i``; three kinds, by ``i % 10``:
- ordinary: every candidate computes the answer with the python tool, then answers: the
  ``4/8`` rule stops the problem once four agree;
- ``3``: two confident candidates (entropy 0.1) are right, three unsure ones (2.0) agree on a
  wrong answer, the rest write no answer: the entropy vote answers right where majority would not;
- ``9``: two candidates answer at once, the other six keep calling the tool until the clamp's
  deadline cancels them mid-step: the vote is over the two.
"""

from __future__ import annotations

import time

import pytest

from kit.config import load_config
from kit.kaggle.competitions import get_competition
from kit.kaggle.submission import Submission
from kit.kaggle.time_bank import TimeClamp
from kit.solver import Solver
from scripted_engine import HarmonyScriptedEngine, analysis, call, final, turn

PROBLEMS = 50
LIMIT_S, MARGIN_S = 40.0, 1.0
POLICY = {"kind": "clamp", "reserve_s": 0.2, "min_s": 0.2, "max_s": 1.5}


def kind(problem_id: str) -> int:
    return int(problem_id[1:]) % 10


def script(problem_id: str, candidate: int, step: int) -> list[int]:
    answer = 7 * int(problem_id[1:])
    if kind(problem_id) == 3:
        if candidate < 2:
            return final(f"\\boxed{{{answer}}}")[2:]
        if candidate < 5:
            return final(f"\\boxed{{{answer + 1}}}")[2:]
        return final("I could not finish.")[2:]
    if kind(problem_id) == 9 and candidate >= 2:
        return turn(analysis("Still searching."), call(f"x = {step}"))  # until the deadline
    if step == 0 and kind(problem_id) != 9:
        return turn(analysis("Let me compute it."), call(f"print(7 * {problem_id[1:]})"))
    return turn(analysis("The tool agrees.")) + final(f"So the answer is \\boxed{{{answer}}}. Done.")


def delay_s(problem_id: str, candidate: int) -> float:
    # Candidates 4-7 are slower: they are still running when the first four agree.
    return 0.25 if kind(problem_id) == 9 or candidate >= 4 else 0.0


def entropy(problem_id: str, candidate: int) -> float:
    return 0.1 if candidate < 2 else 2.0


@pytest.fixture(scope="module")
def run():
    cfg = load_config("aimo3-gptoss120b-h100", time_policy=POLICY, executor={"cell_timeout_s": 1.0},
                      warm_page_cache=False)
    started = time.monotonic()
    sub = Submission(get_competition("aimo3"), cfg, started_at=started, num_problems=PROBLEMS,
                     time_limit_s=LIMIT_S, safety_margin_s=MARGIN_S,
                     solver_factory=lambda c: Solver(c, engine=HarmonyScriptedEngine(c, script, delay_s, entropy)))
    try:
        answers = [sub.answer(f"q{i}", f"Problem {i}: what is 7 times {i}?") for i in range(PROBLEMS)]
        results = list(sub.records)
    finally:
        sub.close()
    return sub, answers, results, time.monotonic() - started


def test_the_shipped_config_is_the_winners_pipeline(run):
    sub, _, _, _ = run
    cfg = sub.cfg
    assert (cfg.tool_format.kind, cfg.num_samples, cfg.early_stop, cfg.vote.method) == ("harmony", 8, ["4/8"], "entropy")
    assert cfg.stop_at_first_answer and cfg.logprobs == 5 and type(sub.bank) is TimeClamp


def test_every_problem_is_answered_and_the_run_ends_inside_its_limit(run):
    _, answers, _, elapsed = run
    assert len(answers) == PROBLEMS
    assert elapsed < LIMIT_S - MARGIN_S


def test_ordinary_problems_stop_when_four_agree(run):
    _, answers, records, _ = run
    for i in range(PROBLEMS):
        if i % 10 not in (3, 9):
            assert answers[i] == 7 * i
    stops = [r["detail"] for r in records if kind(r["id"]) not in (3, 9)]
    assert stops and all(s == "early_stop:4/8" for s in stops), stops


def test_the_entropy_vote_answers_with_the_confident_minority(run):
    _, answers, _, _ = run
    assert [answers[i] for i in range(3, PROBLEMS, 10)] == [7 * i for i in range(3, PROBLEMS, 10)]


def test_hard_problems_end_at_their_clamped_deadline_with_the_votes_in(run):
    _, answers, records, _ = run
    hard = [r for r in records if kind(r["id"]) == 9]
    assert len(hard) == 5
    for r in hard:
        assert r["detail"] == "deadline"
        assert r["used_s"] <= r["allowance_s"] + 1.0  # cancelled mid-step, within a second of the deadline
    assert [answers[i] for i in range(9, PROBLEMS, 10)] == [7 * i for i in range(9, PROBLEMS, 10)]
