"""KTO rows from kit samples (scripted engine; the real engine runs in the smoke chain)."""

from pathlib import Path

from eval.grading.grader import Grader
from eval.splits import EvalProblem
from kit.config import KitConfig
from kit.solver import Solver
from kit.tir import chat_messages
from scripted_engine import AnswerBook
from train.chats import TIR_TRACES
from train.kto_data import reference_rows, sample_rows

RECIPES = Path(__file__).resolve().parent.parent / "train/recipes/smoke"
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


def test_candidates_that_ended_in_a_kit_error_are_left_out(monkeypatch):
    from kit.sandbox.pool import ExecutorPool
    from scripted_engine import ScriptedEngine, code_step

    async def no_session(pool):
        raise RuntimeError("more than 128 sessions are open")

    monkeypatch.setattr(ExecutorPool, "open_session", no_session)
    # Candidate 1 writes code, cannot get a session, and ends in an error with its trace cut
    # off at the output fence: not a wrong answer of the model's.
    script = lambda c, s: code_step("print(1)") if c == 1 else "So \\boxed{2}."  # noqa: E731
    cfg = KitConfig(num_samples=3, max_code_rounds=1, early_stop=[], profile="integer")
    with Solver(cfg, engine=ScriptedEngine(script)) as solver, Grader() as grader:
        rows = sample_rows(solver, grader, PROBLEMS[:1], cfg)
    assert sorted(r["candidate"] for r in rows) == [0, 2]


def test_the_smoke_recipe_samples_the_tir_model_in_the_format_it_was_trained_in():
    import yaml

    from kit.tir import render_prompt
    from train.chats import load_messages
    from train.kto_data import make_parser

    (args,) = make_parser().parse_args_and_config(["--config", str(RECIPES / "kto_data.yaml")])
    sft_tir = yaml.safe_load((RECIPES / "sft_tir.yaml").read_text())
    cfg = args.sampling_config()
    assert cfg.model == sft_tir["output_dir"]
    (trained,) = load_messages(sft_tir["dataset"], limit=1, decontaminate=sft_tir["decontaminate"])
    assert chat_messages(trained["problem"], cfg.prompt_template, cfg.system_prompt) == trained["messages"][:-1]
    assert trained["messages"][-2]["content"] == render_prompt(trained["problem"])
    assert cfg.tool_format.code_trigger == "output_fence"  # the model was trained to write ```output after its code


def test_a_problem_file_without_ids_gets_its_reference_solutions_and_both_labels(tmp_path, monkeypatch):
    import json

    import kit.solver
    from scripted_engine import ScriptedEngine
    from train.kto_data import KtoDataArguments, main

    traces = [json.loads(line) for line in TIR_TRACES.read_text().splitlines()[:3]]
    problems = tmp_path / "no_ids.jsonl"
    problems.write_text("".join(json.dumps({k: t[k] for k in ("problem", "answer", "trace")}) + "\n" for t in traces))
    # A model that is always wrong: the desirable rows can only be the reference solutions.
    wrong = lambda cfg: Solver(cfg, engine=ScriptedEngine(lambda c, s: "So \\boxed{99999}."))  # noqa: E731
    monkeypatch.setattr(kit.solver, "Solver", wrong)
    out = tmp_path / "kto.jsonl"
    main(KtoDataArguments(problems=str(problems), output=str(out), add_reference_solutions=True,
                          kit={"config": str(RECIPES / "kit_tir.yaml"), "model": "unused", "num_samples": 2},
                          decontaminate_against=[]))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    references = [r for r in rows if r["candidate"] == "reference"]
    assert sorted(r["problem_id"] for r in references) == ["0", "1", "2"]
    assert {r["label"] for r in rows} == {True, False}
