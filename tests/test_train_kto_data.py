"""KTO rows from kit samples (scripted engine; the real engine runs in the smoke chain)."""

from eval.grader import Grader
from eval.splits import EvalProblem
from kit.config import KitConfig
from kit.solver import Solver
from kit.tir import chat_messages
from scripted_engine import AnswerBook
from train.data import TIR_TRACES
from train.kto_data import reference_rows, sample_rows

PROBLEMS = [EvalProblem(f"p{i}", f"What is {i} + {i}?", str(2 * i)) for i in range(1, 4)]


def test_every_finished_candidate_becomes_a_labelled_row_in_the_kits_prompt_format():
    cfg = KitConfig(num_samples=3, max_code_rounds=1, early_stop=[], profile="integer")
    with Solver(cfg, engine=AnswerBook()) as solver, Grader() as grader:
        rows = sample_rows(solver, grader, PROBLEMS, cfg)
    assert len(rows) == 9
    # p2 (even): all three right; p1, p3: only candidate 0 right.
    assert sum(r["label"] for r in rows) == 5
    assert {r["label"] for r in rows if r["problem_id"] == "p2"} == {True}
    assert rows[0]["prompt"] == chat_messages("What is 1 + 1?", cfg.prompt_template, cfg.system_prompt)
    assert rows[0]["completion"][0]["role"] == "assistant" and "\\boxed{2}" in rows[0]["completion"][0]["content"]


def test_reference_solutions_become_desirable_rows():
    import json

    rows = [json.loads(line) for line in TIR_TRACES.read_text().splitlines()[:3]]
    problems = [EvalProblem(r["id"], r["problem"], r["answer"]) for r in rows]
    refs = reference_rows(str(TIR_TRACES), problems, KitConfig())
    assert refs and all(r["label"] and "```python" in r["completion"][0]["content"] for r in refs)


def test_sampling_several_problems_at_once_gives_the_same_rows():
    cfg = KitConfig(num_samples=3, max_code_rounds=1, early_stop=[], profile="integer")
    with Solver(cfg, engine=AnswerBook()) as solver, Grader() as grader:
        one_at_a_time = sample_rows(solver, grader, PROBLEMS, cfg)
        three_at_once = sample_rows(solver, grader, PROBLEMS, cfg, in_flight=3)
    key = lambda r: (r["problem_id"], r["candidate"], r["label"])  # noqa: E731
    assert sorted(map(key, three_at_once)) == sorted(map(key, one_at_a_time))
