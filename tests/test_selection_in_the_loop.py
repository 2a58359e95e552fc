"""Selection that needs a model, in the SC-TIR loop (kit/sctir.py, kit/genselect.py): a reward
model's scores weigh the rm vote, GenSelect picks among the distinct answers, and both stay
inside the problem's deadline (the vote stands when they cannot finish). Scripted engines and a
stand-in scorer; the real reward model on vLLM is tests/test_reward_model.py's."""

from __future__ import annotations

import asyncio

import pytest

from kit import genselect
from kit.config import GenSelectConfig, KitConfig
from kit.sandbox.pool import ExecutorPool
from kit.sctir import ProblemRun
from kit.voting import VoteResult
from scripted_engine import ScriptedEngine

ANSWERS = ["5", "5", "5", "7", "7"]  # majority: 5


class StandInScorer:
    """Scores a trace by the answer it ends with (a reward model that prefers 7), or sleeps."""

    def __init__(self, delay_s: float = 0.0):
        self.delay_s = delay_s
        self.calls: list[tuple[str, int]] = []

    async def score(self, problem: str, completions: list[str], request_id: str) -> list[float]:
        self.calls.append((problem, len(completions)))
        await asyncio.sleep(self.delay_s)
        return [3.0 if "{7}" in text else -1.0 for text in completions]


class Selector(ScriptedEngine):
    """Candidates answer ANSWERS; the GenSelect request (candidate index N) replies ``judgment``."""

    def __init__(self, judgment: str, delay_s: float = 0.0):
        super().__init__(lambda c, s: f"So \\boxed{{{ANSWERS[c]}}}." if c < len(ANSWERS) else judgment,
                         delay_s=lambda c, s: delay_s if c >= len(ANSWERS) else 0.0)


def solve(cfg: KitConfig, engine, reward=None, time_limit_s: float = 30.0):
    async def go():
        async with ExecutorPool(cfg.executor) as pool:
            run = ProblemRun("p", engine.prompt_ids("x"), cfg, engine, pool, time_limit_s, problem="What is x?",
                             reward=reward)
            return await run.solve()

    return asyncio.run(go())


def cfg(**fields) -> KitConfig:
    return KitConfig(**{"num_samples": len(ANSWERS), "early_stop": [], **fields})


def test_the_rm_vote_follows_the_reward_models_scores():
    scorer = StandInScorer()
    result = solve(cfg(vote={"method": "rm"}, reward_model={"path": "unused"}), Selector(""), scorer)
    assert scorer.calls == [("What is x?", 5)]
    assert [c.reward_score for c in result.candidates] == [-1.0, -1.0, -1.0, 3.0, 3.0]
    assert (result.answer, result.vote.method) == ("7", "rm")


def test_a_reward_model_that_misses_the_deadline_leaves_the_majority_vote():
    result = solve(cfg(vote={"method": "rm"}, reward_model={"path": "unused"}), Selector(""),
                   StandInScorer(delay_s=5.0), time_limit_s=1.0)
    assert (result.answer, result.vote.method) == ("5", "majority")
    assert all(c.reward_score is None for c in result.candidates)


def test_genselect_overrides_the_vote_with_its_pick():
    # The vote ranks 5 (solution 1) before 7 (solution 2); the selector names solution 2.
    result = solve(cfg(genselect={"enabled": True, "reserve_s": 0}), Selector("Solution 1 errs.\nJudgment: 2"))
    assert (result.answer, result.selected_by, result.vote.answer) == ("7", "genselect", "5")
    assert result.genselect_judgment.endswith("Judgment: 2")


def test_an_unparsable_judgment_leaves_the_vote_standing():
    result = solve(cfg(genselect={"enabled": True, "reserve_s": 0}), Selector("I cannot decide."))
    assert (result.answer, result.selected_by) == ("5", "vote")


def test_genselect_that_would_pass_the_deadline_is_cancelled_and_the_vote_stands():
    result = solve(cfg(genselect={"enabled": True, "reserve_s": 0}), Selector("Judgment: 2", delay_s=5.0),
                   time_limit_s=1.0)
    assert (result.answer, result.selected_by) == ("5", "vote")
    assert result.elapsed_s < 2.0


def test_genselect_is_not_started_with_less_than_its_reserve_left():
    engine = Selector("Judgment: 2")
    result = solve(cfg(genselect={"enabled": True, "reserve_s": 60}), engine, time_limit_s=30.0)
    assert result.selected_by == "vote" and not any(r.startswith("p-5-") for r in engine.requests)


def test_genselect_shows_each_answer_once_by_its_shortest_solution():
    vote = VoteResult("5", {"5": 2, "7": 1}, {"5": 2.0, "7": 1.0})
    solutions = {"5": [(40, 0, "long " * 8 + "\\boxed{5}"), (12, 2, "short \\boxed{5}")], "7": [(30, 1, "\\boxed{7}")]}
    options = genselect.choices(vote, solutions, max_chars=1000)
    assert [(o.answer, o.candidate, o.solution) for o in options] == [("5", 2, "short \\boxed{5}"), ("7", 1, "\\boxed{7}")]
    text = genselect.prompt("What is x?", options)
    assert "Solution 1:\nshort \\boxed{5}" in text and "Solution 2:\n\\boxed{7}" in text


@pytest.mark.parametrize("text, n, expected", [
    ("Judgment: 2", 3, 1), ("judgment: **3**", 3, 2), ("Judgment: 1 ... no, Judgment: 2", 2, 1),
    ("Judgment: 4", 3, None), ("Judgment: 0", 3, None), ("no verdict", 3, None),
])
def test_the_last_judgment_in_range_counts(text, n, expected):
    assert genselect.parse_judgment(text, n) == expected


def test_tiebreak_mode_decides_only_between_answers_tied_at_the_top():
    options = [genselect.Choice(a, i, "") for i, a in enumerate(["5", "7", "9"])]
    tiebreak = GenSelectConfig(enabled=True, mode="tiebreak")
    tied = VoteResult("5", {"5": 2, "7": 2, "9": 1}, {"5": 2.0, "7": 2.0, "9": 1.0})
    untied = VoteResult("5", {"5": 3, "7": 2}, {"5": 3.0, "7": 2.0})
    assert genselect.applies(tied, tiebreak) and not genselect.applies(untied, tiebreak)
    assert genselect.decide(tied, options, 1, tiebreak) == "7"
    assert genselect.decide(tied, options, 2, tiebreak) is None  # 9 was not tied at the top
