"""SC-TIR loop logic with a scripted engine and the real executor pool."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import random
import time

import pytest

from kit.answers import get_profile
from kit.config import KitConfig
from kit.engine import GenerationStep
from kit.sandbox.pool import CellResult, ExecutorPool
from kit.sctir import ProblemRun
from kit.tir import code_stop_string
from kit.solver import Solver
from scripted_engine import ScriptedEngine, code_step


def solve(script, time_limit_s=30.0, delay_s=0.0, **cfg_fields):
    cfg = KitConfig(**{"num_samples": 4, "max_code_rounds": 2, "early_stop": [], **cfg_fields})
    engine = ScriptedEngine(script, delay_s, code_stop_string(cfg.tool_format.code_trigger))

    async def go():
        async with ExecutorPool(dataclasses.replace(cfg.executor, max_concurrent_cells=2)) as pool:
            run = ProblemRun("p", engine.prompt_ids("x"), cfg, engine, pool, time_limit_s)
            return await run.solve()

    return asyncio.run(go()), engine


def test_cell_output_is_inserted_after_the_output_fence():
    result, _ = solve(lambda c, s: code_step("print(6 * 7)") if s == 0 else "So \\boxed{42}.")
    c = result.candidates[0]
    assert "```output\n42\n```\nSo \\boxed{42}." in c.text
    assert c.cells[0].output == "\n42\n```\n"


def test_interpreter_state_persists_across_code_rounds():
    steps = [code_step("x = 5"), code_step("print(x * 2)"), "\\boxed{10}"]
    result, _ = solve(lambda c, s: steps[s])
    c = result.candidates[0]
    assert [cell.error for cell in c.cells] == [None, None]
    assert c.cells[1].output.strip().startswith("10")


def test_majority_vote_and_vote_table():
    answers = ["7", "7", "3", "7"]
    result, _ = solve(lambda c, s: f"\\boxed{{{answers[c]}}}")
    assert result.answer == "7"
    assert result.vote.table == {"7": 3, "3": 1}
    assert result.stop_reason == "all_finished"


def test_fallback_answer_when_no_candidate_answers():
    result, _ = solve(lambda c, s: "I do not know.")
    assert result.used_fallback and result.answer == get_profile("aimo3").fallback
    assert {c.reason for c in result.candidates} == {"no_answer"}


def test_length_limit_prunes_the_candidate():
    result, _ = solve(lambda c, s: "x" * 50 + "\\boxed{1}", max_new_tokens=20)
    assert {(c.status, c.reason) for c in result.candidates} == {("pruned", "length")}


def test_a_length_pruned_candidate_does_not_vote_even_with_a_boxed_answer():
    result, _ = solve(lambda c, s: "\\boxed{1}" + "x" * 50, max_new_tokens=20)
    assert result.vote.table == {} and result.used_fallback


def test_answer_from_code_output_when_enabled():
    steps = [code_step("print(6 * 7)"), "The program printed the answer."]
    on, _ = solve(lambda c, s: steps[s], answer_from_code_output=True)
    assert on.answer == "42" and on.candidates[0].answer_source == "code_output"
    off, _ = solve(lambda c, s: steps[s])
    assert off.used_fallback and off.candidates[0].reason == "no_answer"


def test_code_round_limit_prunes_the_candidate():
    result, _ = solve(lambda c, s: code_step("print(1)"), max_code_rounds=1)
    c = result.candidates[0]
    assert (c.status, c.reason, len(c.cells)) == ("pruned", "code_round_limit", 1)


def test_code_close_trigger_runs_code_when_a_python_block_closes():
    steps = ["Check:\n```text\nnot code\n```\nNow:\n```python\nprint(2 ** 10)\n```\nand more", "\\boxed{1024}"]
    result, engine = solve(lambda c, s: steps[min(s, 1)] if s != 1 else "```python\nprint(2 ** 10)\n```\n",
                           num_samples=1, tool_format={"code_trigger": "code_close"})
    c = result.candidates[0]
    assert [cell.code for cell in c.cells] == ["print(2 ** 10)\n"]
    # The kit writes the output fence the model never wrote.
    assert "```python\nprint(2 ** 10)\n```\n```output\n1024\n```\n" in c.text
    assert c.answer == "1024"


def test_output_fence_without_code_is_malformed():
    result, _ = solve(lambda c, s: "no code here\n```output")
    assert result.candidates[0].reason == "malformed_code"


def test_code_error_is_shown_to_the_model_and_the_candidate_goes_on():
    steps = [code_step("1 / 0"), "\\boxed{5}"]
    result, _ = solve(lambda c, s: steps[s])
    c = result.candidates[0]
    assert c.cells[0].error == "ZeroDivisionError"
    assert "ZeroDivisionError" in c.text and "/tmp" not in c.cells[0].output
    assert c.status == "answered"


def test_long_output_is_truncated_for_the_model():
    steps = [code_step("print('a' * 5000)"), "\\boxed{5}"]
    result, _ = solve(lambda c, s: steps[s], output_max_chars=100)
    assert len(result.candidates[0].cells[0].output) < 200
    assert "truncated" in result.candidates[0].cells[0].output


def test_invalid_answer_under_the_profile_does_not_vote():
    result, _ = solve(lambda c, s: "\\boxed{123456}", profile="aimo3")
    assert {c.reason for c in result.candidates} == {"invalid_answer"}
    result, _ = solve(lambda c, s: "\\boxed{123456}", profile="aimo1")
    assert result.answer == "456"


def test_decided_early_stop_cancels_the_rest():
    # Candidates 0-3 answer at once; 4 and 5 would take 10 s and cannot outvote them.
    result, engine = solve(lambda c, s: "\\boxed{9}", num_samples=6, early_stop=["decided"],
                           delay_s=lambda c, s: 10.0 if c >= 4 else 0.0)
    assert result.stop_reason == "early_stop:decided"
    assert result.elapsed_s < 5
    assert sorted(c.status for c in result.candidates) == ["answered"] * 4 + ["cancelled"] * 2
    assert len(engine.cancelled) == 2


def test_k_of_m_early_stop_rule():
    result, _ = solve(lambda c, s: "\\boxed{9}", num_samples=8, early_stop=["2/2"],
                      delay_s=lambda c, s: 0.0 if c < 2 else 10.0)
    assert result.stop_reason == "early_stop:2/2" and result.answer == "9"


def test_deadline_votes_over_what_finished():
    result, _ = solve(lambda c, s: f"\\boxed{{{c}}}", num_samples=4, time_limit_s=1.0,
                      delay_s=lambda c, s: 0.1 if c == 2 else 30.0)
    assert result.stop_reason == "deadline"
    assert result.elapsed_s < 3.0
    assert result.answer == "2"
    assert [c.status for c in result.candidates].count("cancelled") == 3


def test_lockstep_waits_for_every_candidate_before_the_next_round():
    # Candidate 0 generates slowly; in lockstep nobody starts round 1 before it is done.
    steps = [code_step("print(1)"), "\\boxed{1}"]
    delay = lambda c, s: 0.5 if (c, s) == (0, 0) else 0.0  # noqa: E731
    lockstep, engine = solve(lambda c, s: steps[s], mode="lockstep", delay_s=delay)
    first_round_1 = min(i for i, r in enumerate(engine.requests) if r.endswith("-1"))
    assert all(r.endswith("-0") for r in engine.requests[:first_round_1])
    assert len([r for r in engine.requests[:first_round_1]]) == 4
    assert lockstep.answer == "1"


def test_async_mode_does_not_wait_for_slow_candidates():
    steps = [code_step("print(1)"), "\\boxed{1}"]
    delay = lambda c, s: 1.0 if (c, s) == (0, 0) else 0.0  # noqa: E731
    _, engine = solve(lambda c, s: steps[s], mode="async", delay_s=delay)
    # Candidates 1-3 finish both rounds while candidate 0 is still in round 0.
    assert engine.requests.index("p-0-1") > engine.requests.index("p-3-1")


@pytest.fixture(scope="module")
def scripted_solver():
    solver = Solver(KitConfig(num_samples=2, max_code_rounds=1, early_stop=[]),
                    engine=ScriptedEngine(lambda c, s: "\\boxed{3}"))
    yield solver
    solver.close()


@pytest.mark.parametrize("bad", ["", "   ", None, 12345, "x" * 200_000])
def test_solver_answers_bad_input_with_the_fallback(scripted_solver, bad, caplog):
    result = scripted_solver.solve(bad, "bad")
    assert result.used_fallback and result.answer == "0"
    assert result.stop_reason.startswith("error")
    assert "fallback" in caplog.text


def test_solver_solves_many_problems_on_one_loop(scripted_solver):
    assert [scripted_solver.solve(f"problem {i}", str(i)).answer for i in range(3)] == ["3", "3", "3"]


def test_solver_serves_a_caller_whose_thread_runs_its_own_event_loop():
    # A notebook's main thread runs IPython's loop; predict and the eval runner call from there.
    async def caller():
        with Solver(KitConfig(num_samples=2, max_code_rounds=0, early_stop=[]),
                    engine=ScriptedEngine(lambda c, s: "\\boxed{5}")) as solver:
            return solver.solve("What is 2 + 3?", "p").answer

    assert asyncio.run(caller()) == "5"


def test_solve_many_runs_problems_at_once_and_keeps_their_order():
    class Counting(ScriptedEngine):
        in_flight = most_in_flight = 0

        async def generate(self, token_ids, max_tokens, request_id):
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try:
                return await super().generate(token_ids, max_tokens, request_id)
            finally:
                self.in_flight -= 1

    engine = Counting(lambda c, s: "\\boxed{3}", delay_s=0.2)
    with Solver(KitConfig(num_samples=2, max_code_rounds=0, early_stop=[]), engine=engine) as solver:
        results = solver.solve_many([(f"p{i}", f"problem {i}") for i in range(6)], in_flight=3)
    assert [r.problem_id for r in results] == [f"p{i}" for i in range(6)]
    assert [r.answer for r in results] == ["3"] * 6
    assert engine.most_in_flight == 3 * 2  # three problems' two candidates each, never more


def test_a_stalled_event_loop_still_gets_the_problem_answered(monkeypatch, caplog):
    import kit.solver

    class Blocking(ScriptedEngine):
        async def generate(self, token_ids, max_tokens, request_id):
            time.sleep(1.5)  # hostile: blocks the loop, so no deadline inside it can fire
            return await super().generate(token_ids, max_tokens, request_id)

    monkeypatch.setattr(kit.solver, "SOLVE_GRACE_S", 0.2)
    with Solver(KitConfig(num_samples=1, max_code_rounds=0, early_stop=[]),
                engine=Blocking(lambda c, s: "\\boxed{3}")) as solver:
        started = time.monotonic()
        result = solver.solve("What is 1 + 2?", "p", time_limit_s=0.2)
        waited = time.monotonic() - started
    assert result.used_fallback and "after the deadline" in result.stop_reason
    assert waited < 1.2


class SlowClosePool:
    """Sessions whose cells answer at once and whose close takes far longer than any problem
    (an executor under load): a candidate that ended is still closing when the problem stops."""

    async def open_session(self):
        return SlowCloseSession()


class SlowCloseSession:
    async def run(self, code, timeout_s=None):
        return CellResult("1\n", None, False, False, 0.0)

    async def close(self):
        await asyncio.sleep(30)


def solve_on(engine, pool, time_limit_s=30.0, clock=time.monotonic, **cfg_fields):
    cfg = KitConfig(**{"num_samples": 8, "max_code_rounds": 2, "early_stop": [], **cfg_fields})

    async def go():
        run = ProblemRun("p", engine.prompt_ids("x"), cfg, engine, pool, time_limit_s, clock=clock)
        return await run.solve()

    return asyncio.run(go())


@pytest.mark.parametrize("trial", range(3))
def test_an_answer_found_just_before_the_deadline_votes_while_its_session_closes(trial):
    # Every candidate answers 0.3 s before the deadline, then spends the rest closing its session.
    steps = [code_step("print(1)"), "\\boxed{7}"]
    engine = ScriptedEngine(lambda c, s: steps[s], delay_s=lambda c, s: 0.3 if s == 1 else 0.0)
    result = solve_on(engine, SlowClosePool(), time_limit_s=0.6)
    assert result.stop_reason == "deadline"
    assert [c.status for c in result.candidates] == ["answered"] * 8
    assert result.answer == "7" and result.vote.table == {"7": 8} and not result.used_fallback


def test_early_stop_counts_candidates_that_ended_but_are_still_closing_their_session():
    # 0-2 answer 5 at once and then close for 30 s; 3 answers 5 at 0.2 s without code: the
    # first four answers agree by then. 4-7 answer 9 at 1 s.
    def script(c, s):
        return code_step("print(1)") if c < 3 and s == 0 else ("\\boxed{5}" if c < 4 else "\\boxed{9}")

    engine = ScriptedEngine(script, delay_s=lambda c, s: 0.0 if c < 3 else 0.2 if c == 3 else 1.0)
    result = solve_on(engine, SlowClosePool(), time_limit_s=3.0, early_stop=["4/4"])
    assert result.stop_reason == "early_stop:4/4"
    assert result.answer == "5" and result.vote.table == {"5": 4}
    assert result.elapsed_s < 0.9


class BatchEngine(ScriptedEngine):
    """Like vLLM finishing a batch in one engine step: holds the requests of candidates
    0..``expected``-1 until all have arrived, then answers them at once, in ``order``. Later
    candidates never finish."""

    def __init__(self, script, expected: int, order: list[int]):
        super().__init__(script)
        self.expected, self.order = expected, order
        self.waiting: dict[int, asyncio.Future] = {}

    async def generate(self, token_ids, max_tokens, request_id):
        candidate = int(request_id.rsplit("-", 2)[1])
        if candidate >= self.expected:
            await asyncio.Event().wait()
        self.waiting[candidate] = asyncio.get_running_loop().create_future()
        if len(self.waiting) == self.expected:
            for c in self.order:
                self.waiting[c].set_result(None)
        await self.waiting[candidate]
        text = self.script(candidate, 0)
        return GenerationStep(self.encode(text), text, "stop", None)


def test_answers_finishing_at_the_same_time_count_in_candidate_order():
    # Candidates 0-3 answer 1 and 4-7 answer 2, all in one batch with equal finish times, while
    # 8-11 still run: the 4/4 window is the first four by index, whatever order the tasks come back in.
    outcomes = set()
    for trial in range(20):
        order = list(range(8))
        random.Random(trial).shuffle(order)
        engine = BatchEngine(lambda c, s: "\\boxed{1}" if c < 4 else "\\boxed{2}", 8, order)
        result = solve_on(engine, None, clock=lambda: 0.0, time_limit_s=1.0, early_stop=["4/4"], num_samples=12)
        outcomes.add((result.stop_reason, result.answer))
    assert outcomes == {("early_stop:4/4", "1")}


def test_answers_in_one_batch_count_in_finish_order():
    # 0-2 answer 1 and 3-7 answer 2, released 7..0 on a clock that ticks at every reading: the
    # first four to finish (7-4) agree, though the first four by index do not.
    ticks = itertools.count()
    engine = BatchEngine(lambda c, s: "\\boxed{1}" if c < 3 else "\\boxed{2}", 8, list(range(7, -1, -1)))
    result = solve_on(engine, None, clock=lambda: next(ticks) / 1000, time_limit_s=1.0, early_stop=["4/4"],
                      num_samples=12)
    assert (result.stop_reason, result.answer) == ("early_stop:4/4", "2")


def test_common_python_fence_spellings_run():
    for fence in ("```py", "```Python", "```python3", "```PY", "```ipython"):
        result, _ = solve(lambda c, s: f"{fence}\nprint(6 * 7)\n```\n```output" if s == 0 else "\\boxed{42}",
                          num_samples=1)
        c = result.candidates[0]
        assert [cell.code for cell in c.cells] == ["print(6 * 7)\n"], fence
        assert c.answer == "42", fence


def test_a_fence_inside_a_string_does_not_cut_the_cell():
    step = 'Check:\n```python\nprint("```")\nprint(6 * 7)\n```\n```output'
    result, _ = solve(lambda c, s: step if s == 0 else "\\boxed{42}", num_samples=1)
    c = result.candidates[0]
    assert c.cells[0].error is None and c.cells[0].output == "\n```\n42\n```\n"


def test_an_output_fence_inside_the_code_keeps_the_candidate_writing():
    # The engine stops at the output fence inside the string; the block is still open.
    steps = ['```python\nprint("```output', '")\nprint(1 + 1)\n```\n```output', "\\boxed{2}"]
    result, engine = solve(lambda c, s: steps[s], num_samples=1)
    c = result.candidates[0]
    assert [cell.code for cell in c.cells] == ['print("```output")\nprint(1 + 1)\n']
    assert c.cells[0].output == "\n```output\n2\n```\n" and c.answer == "2"


def test_code_close_stop_inside_a_string_keeps_the_candidate_writing():
    # vLLM stops at "```\n" inside the triple-quoted string: not a closing fence line.
    steps = ['```python\nx = """a```\nb"""\nprint(len(x))\n```\n', "\\boxed{5}"]
    script = lambda c, s: steps[0] if s == 0 else ('b"""\nprint(len(x))\n```\n' if s == 1 else steps[1])  # noqa: E731
    result, _ = solve(script, num_samples=1, tool_format={"code_trigger": "code_close"})
    c = result.candidates[0]
    assert [cell.code for cell in c.cells] == ['x = """a```\nb"""\nprint(len(x))\n']
    assert c.cells[0].output == "```output\n6\n```\n" and c.answer == "5"


def test_a_block_that_never_closes_ends_on_the_context_budget():
    result, engine = solve(lambda c, s: '```python\ns = "a```output' if s == 0 else 'a```output', num_samples=1,
                           max_model_len=400, max_new_tokens=100)
    c = result.candidates[0]
    assert c.status == "pruned" and c.reason in ("length", "context_full") and not c.cells
    assert len(engine.requests) < 60


class TimeoutRecordingPool:
    """Stands in for the sandbox pool: records the timeout each cell is given (the property
    under test is what the loop asks for, not how the sandbox enforces it)."""

    def __init__(self):
        self.timeouts: list[float] = []

    async def open_session(self):
        pool = self

        class Session:
            async def run(self, code, timeout_s=None):
                pool.timeouts.append(timeout_s)
                return CellResult("1\n", None, False, False, 0.0)

            async def close(self):
                pass

        return Session()


def test_a_cell_gets_no_more_time_than_is_left_before_the_deadline():
    # Clock frozen 3 s before the deadline: the cell's timeout is those 3 s, not its own 60 s.
    now = [100.0]
    cfg = KitConfig(num_samples=1, max_code_rounds=2, early_stop=[], executor={"cell_timeout_s": 60.0})
    steps = [code_step("print(1)"), "\\boxed{1}"]
    engine = ScriptedEngine(lambda c, s: steps[s])
    pool = TimeoutRecordingPool()

    async def go():
        run = ProblemRun("p", engine.prompt_ids("x"), cfg, engine, pool, 10.0, clock=lambda: now[0])
        now[0] += 7.0
        return await run.solve()

    result = asyncio.run(go())
    assert result.answer == "1"
    assert pool.timeouts == [pytest.approx(3.0)]


def test_a_candidate_token_budget_spans_its_steps():
    # 40 tokens per candidate: the first step (a 30-character code step) fits, the second is cut at 10.
    steps = [code_step("print(1)", prose="a" * 2), "b" * 100]
    result, engine = solve(lambda c, s: steps[s], num_samples=1, max_candidate_tokens=40)
    c = result.candidates[0]
    assert (c.status, c.reason, c.generated_tokens) == ("pruned", "token_budget", 40)


def test_first_answer_stop_ends_the_candidate_at_its_first_box():
    cfg = KitConfig(num_samples=1, early_stop=[], stop_at_first_answer=True)
    engine = ScriptedEngine(lambda c, s: "So \\boxed{12}. Wait, maybe \\boxed{13}.", stop_at_first_answer=True)

    async def go():
        async with ExecutorPool(cfg.executor) as pool:
            return await ProblemRun("p", engine.prompt_ids("x"), cfg, engine, pool, 30.0).solve()

    c = asyncio.run(go()).candidates[0]
    assert (c.status, c.answer, c.text) == ("answered", "12", "So \\boxed{12}")


def test_token_entropies_are_recorded_per_candidate_and_weigh_the_entropy_vote():
    # Two confident candidates say 5 (entropy 0.1), three unsure ones say 7 (entropy 2.0):
    # weights 2 / 0.1 = 20 against 3 / 2 = 1.5, so the entropy vote answers 5, majority 7.
    answers = ["5", "5", "7", "7", "7"]
    cfg = KitConfig(num_samples=5, early_stop=[], logprobs=5, vote={"method": "entropy"})
    engine = ScriptedEngine(lambda c, s: f"\\boxed{{{answers[c]}}}", entropy=lambda c: 0.1 if c < 2 else 2.0)

    async def go():
        async with ExecutorPool(cfg.executor) as pool:
            return await ProblemRun("p", engine.prompt_ids("x"), cfg, engine, pool, 30.0).solve()

    result = asyncio.run(go())
    assert [c.mean_entropy for c in result.candidates] == pytest.approx([0.1, 0.1, 2.0, 2.0, 2.0])
    assert [c.tail_entropy for c in result.candidates] == pytest.approx([0.1, 0.1, 2.0, 2.0, 2.0])
    assert result.answer == "5" and result.vote.table == {"5": 2, "7": 3}
    assert result.vote.weights == pytest.approx({"5": 20.0, "7": 1.5})
