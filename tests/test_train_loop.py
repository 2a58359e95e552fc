"""The self-improvement loop's data path end to end on the scripted engine and the real sandbox:
``train sample`` writes a sample directory, ``train select`` reads it, and the training steps
read what select writes. (The real engine and the real trainers run in the engine tests of
tests/test_train_dpo.py and tests/test_scale_out.py, and in `make train-smoke`.)"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from eval.runs import read_complete_lines
from kit.solver import Solver
from kit.tir import chat_messages, render_prompt
from scripted_engine import AnswerBook, ScriptedEngine
from train.chats import TIR_TRACES, load_messages
from train.kto import load_kto_rows
from train.sample import SampleArguments, make_parser as sample_parser, sample
from train.select import SelectArguments, main as select

RECIPES = Path(__file__).resolve().parent.parent / "train/recipes/smoke"


def answer_book_problems(tmp_path: Path) -> str:
    path = tmp_path / "problems.jsonl"
    path.write_text("".join(json.dumps({"id": f"p{i}", "problem": f"What is {i} + {i}?", "answer": str(2 * i)}) + "\n"
                            for i in range(1, 4)))
    return str(path)


def sample_and_select(tmp_path: Path, problems: str, engine, **select_args) -> tuple[Path, dict[str, list[dict]]]:
    args = SampleArguments(problems=problems, output_dir=str(tmp_path / "samples"), decontaminate_against=[],
                           kit={"num_samples": 3, "max_code_rounds": 1, "profile": "integer"})
    sample(args, lambda cfg: Solver(cfg, engine=engine), "scripted")
    select(SelectArguments(samples=[args.output_dir], output_dir=str(tmp_path / "select"), decontaminate_against=[],
                           **select_args))
    rows = {name: [json.loads(line) for line in (tmp_path / "select" / f"{name}.jsonl").read_text().splitlines()]
            for name in ("rft", "dpo", "kto", "rm_pairs")}
    return tmp_path / "samples", rows


def test_kto_rows_carry_the_grades_the_sampling_recorded(tmp_path):
    samples, rows = sample_and_select(tmp_path, answer_book_problems(tmp_path), AnswerBook())
    graded = {(r["problem_id"], r["text"]): r["correct"] for r in read_complete_lines(samples / "samples.jsonl")}
    assert len(graded) == 5  # p1, p3: one right and one wrong text; p2: all three right, one text
    assert {(r["problem_id"], r["completion"][0]["content"]): r["label"] for r in rows["kto"]} == graded


def test_select_rebuilds_the_kits_prompts_from_the_sample_directory(tmp_path):
    samples, rows = sample_and_select(tmp_path, answer_book_problems(tmp_path), AnswerBook())
    config = yaml.safe_load((samples / "config.yaml").read_text())["kit_config"]
    for row in rows["rft"]:
        i = int(row["problem_id"][1:])
        assert row["prompt"] == chat_messages(f"What is {i} + {i}?", config["prompt_template"], config["system_prompt"])


def test_what_select_writes_is_what_the_training_steps_read(tmp_path):
    from train.dpo import load_pair_rows

    _, rows = sample_and_select(tmp_path, answer_book_problems(tmp_path), AnswerBook())
    sft_rows = load_messages(tmp_path / "select" / "rft.jsonl", decontaminate=False)
    assert [r["messages"] for r in sft_rows] == [r["prompt"] + r["completion"] for r in rows["rft"]]
    assert len(load_kto_rows(str(tmp_path / "select" / "kto.jsonl"))) == len(rows["kto"])
    assert len(load_pair_rows(str(tmp_path / "select" / "dpo.jsonl"))) == len(rows["dpo"]) > 0


def test_a_model_that_is_never_right_still_gives_both_kto_labels_with_reference_solutions(tmp_path):
    traces = [json.loads(line) for line in TIR_TRACES.read_text().splitlines()[:3]]
    problems = tmp_path / "no_ids.jsonl"  # ids are positions, in the problems and in the references alike
    problems.write_text("".join(json.dumps({k: t[k] for k in ("problem", "answer", "trace")}) + "\n" for t in traces))
    wrong = ScriptedEngine(lambda c, s: "So \\boxed{99999}.")
    _, rows = sample_and_select(tmp_path, str(problems), wrong, reference_solutions=str(problems))
    assert sorted(r["problem_id"] for r in rows["kto"] if r["label"]) == ["0", "1", "2"]
    assert {r["label"] for r in rows["kto"]} == {True, False}
    assert all(r["candidate"] == "reference" for r in rows["rft"]) and len(rows["rft"]) == 3


def test_the_smoke_recipe_samples_the_tir_model_in_the_format_it_was_trained_in():
    (args,) = sample_parser().parse_args_and_config(["--config", str(RECIPES / "sample.yaml")])
    sft_tir = yaml.safe_load((RECIPES / "sft_tir.yaml").read_text())
    cfg = args.sampling_config()
    assert cfg.model == sft_tir["output_dir"]
    (trained,) = load_messages(sft_tir["dataset"], limit=1, decontaminate=sft_tir["decontaminate"])
    assert chat_messages(trained["problem"], cfg.prompt_template, cfg.system_prompt) == trained["messages"][:-1]
    assert trained["messages"][-2]["content"] == render_prompt(trained["problem"])
    assert cfg.tool_format.code_trigger == "output_fence"  # the model was trained to write ```output after its code


def test_the_smoke_chain_trains_each_step_on_the_previous_steps_output():
    recipe = {name: yaml.safe_load((RECIPES / f"{name}.yaml").read_text())
              for name in ("sample", "select", "sft_tir", "sft_rft", "dpo", "kto", "quantize")}
    assert recipe["select"]["samples"] == [recipe["sample"]["output_dir"]]
    assert recipe["sft_rft"]["model_name_or_path"] == recipe["sft_tir"]["output_dir"]
    assert recipe["sft_rft"]["dataset"] == f"{recipe['select']['output_dir']}/rft.jsonl"
    assert recipe["dpo"]["model_name_or_path"] == recipe["sft_rft"]["output_dir"]
    assert recipe["dpo"]["dataset"] == f"{recipe['select']['output_dir']}/dpo.jsonl"
    assert recipe["kto"]["model_name_or_path"] == recipe["dpo"]["output_dir"]
    assert recipe["kto"]["dataset"] == f"{recipe['select']['output_dir']}/kto.jsonl"
    assert recipe["quantize"]["model_name_or_path"] == recipe["kto"]["output_dir"]
    # The rows are trained in the format they were sampled in.
    assert {recipe[name]["kit"]["config"] for name in ("sample", "sft_rft", "dpo", "kto")} == {
        "train/recipes/smoke/kit_tir.yaml"}
