"""``train select``: from sample directories to RFT/DPO/KTO/reward-model sets. Hand-made sample
directories (the layout ``train sample`` writes, checked end to end in tests/test_train_loop.py),
one property per test."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from eval.splits import load_split
from kit.config import KitConfig
from kit.tir import chat_messages
from train.chats import load_messages, training_format
from train.quality import is_mixed_language, model_written_text
from train.select import SelectArguments, main as select

CFG = KitConfig(profile="integer")


def cell(code: str, error: str | None = None) -> dict:
    return {"code": code, "output": "", "error": error, "timed_out": False, "state_reset": False, "duration_s": 0.01}


def trace(code: str, answer: str, prose: str = "Let me compute.") -> str:
    return f"{prose}\n```python\n{code}\n```\n```output\n{answer}\n```\nSo the answer is $\\boxed{{{answer}}}$."


def candidate(index: int, answer: str, correct: bool, code: str = "print(1 + 1)", tokens: int = 100, *,
              status: str = "answered", reason: str = "answer", answer_source: str = "boxed", prose: str = "Let me compute.",
              reward: float | None = None, seed: int = 0) -> dict:
    return {"seed": seed, "index": index, "text": trace(code, answer, prose), "generated_tokens": tokens,
            "mean_entropy": None, "tail_entropy": None, "cells": [cell(code)], "status": status, "reason": reason,
            "boxed": answer, "answer": answer if status == "answered" else None, "answer_source": answer_source,
            "generation_s": 1.0, "execution_s": 0.1, "finished_at_s": 1.0 + index, "reward_score": reward,
            "graded": answer, "correct": correct, "grade": "correct" if correct else "wrong"}


def write_samples(directory: Path, problems: dict[str, tuple[str, str, list[dict]]], cfg: KitConfig = CFG) -> str:
    """A sample directory: problems maps id -> (problem text, gold, candidate records)."""
    directory.mkdir(parents=True)
    kit_config = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "seed"}
    (directory / "config.yaml").write_text(yaml.safe_dump({
        "record_format": 2, "split": "made-up", "problem_ids": list(problems), "seeds": [0],
        "model_path": "m", "kit_config": kit_config}))
    with (directory / "problems.jsonl").open("w") as p, (directory / "samples.jsonl").open("w") as s:
        for pid, (text, gold, records) in problems.items():
            for record in records:
                s.write(json.dumps({"problem_id": pid, **record}) + "\n")
            p.write(json.dumps({"seed": 0, "problem_id": pid, "gold": gold, "problem": text}) + "\n")
    return str(directory)


def run_select(tmp_path: Path, samples: list[str], **overrides) -> tuple[dict, dict[str, list[dict]]]:
    args = SelectArguments(samples=samples, output_dir=str(tmp_path / "out"), decontaminate_against=[], **overrides)
    report = select(args)
    files = {"rft": "rft.jsonl", "dpo": "dpo.jsonl", "kto": "kto.jsonl", "rm": "rm_pairs.jsonl"}
    rows = {name: [json.loads(line) for line in (tmp_path / "out" / f).read_text().splitlines()]
            for name, f in files.items() if (tmp_path / "out" / f).exists()}
    return report, rows


# Problem "mixed": 2 of 4 right, the two right ones by different methods; "easy": all right, one
# method in two spellings; "hard": all wrong.
LOOP = "total = 0\nfor i in range(1, 11):\n    total += i\nprint(total)"
LOOP_RENAMED = "# sum them\ns = 0\nfor k in range(1, 11):\n    s += k  # add\nprint(s)"
CLOSED = "import math\nprint(10 * 11 // 2)"
PROBLEMS = {
    "mixed": ("Sum 1..10.", "55", [candidate(0, "55", True, LOOP, 300), candidate(1, "55", True, CLOSED, 100),
                                   candidate(2, "54", False, "print(54)"), candidate(3, "56", False, "print(56)")]),
    "easy": ("What is 1 + 1?", "2", [candidate(0, "2", True, "print(1 + 1)"),
                                    candidate(1, "2", True, "x = 1 + 1\nprint(x)"),
                                    candidate(2, "2", True, "y = 1 + 1  # two\nprint(y)")]),
    "hard": ("What is 7 * 8?", "56", [candidate(0, "54", False), candidate(1, "58", False, "print(58)")]),
}


@pytest.fixture
def samples(tmp_path):
    return write_samples(tmp_path / "samples", PROBLEMS)


def test_traces_that_differ_only_in_comments_and_names_give_one_rft_row(tmp_path):
    directory = write_samples(tmp_path / "s", {"p": ("Sum 1..10.", "55", [
        candidate(0, "55", True, LOOP), candidate(1, "55", True, LOOP_RENAMED)])})
    report, rows = run_select(tmp_path, [directory])
    assert len(rows["rft"]) == 1 and report["per_problem"][0]["distinct_paths"] == 1


def test_with_the_diversity_filter_off_every_clean_correct_trace_is_an_rft_row(tmp_path):
    directory = write_samples(tmp_path / "s", {"p": ("Sum 1..10.", "55", [
        candidate(0, "55", True, LOOP), candidate(1, "55", True, LOOP_RENAMED)])})
    report, rows = run_select(tmp_path, [directory], diversity={"enabled": False})
    assert len(rows["rft"]) == 2 and report["per_problem"][0]["distinct_paths"] == 1


def test_a_trace_using_another_method_is_kept_as_its_own_path(tmp_path, samples):
    _, rows = run_select(tmp_path, [samples])
    assert sorted(r["candidate"].rsplit(":", 1)[1] for r in rows["rft"] if r["problem_id"] == "mixed") == ["0", "1"]


def test_at_most_max_paths_rows_per_problem(tmp_path):
    codes = ["print(1 + 1)", "print(2)", "import sympy\nprint(sympy.Integer(2))", "print(sum([1, 1]))",
             "print(len('ab'))"]
    directory = write_samples(tmp_path / "s", {"p": ("What is 1 + 1?", "2", [
        candidate(i, "2", True, code) for i, code in enumerate(codes)])})
    for k in (1, 3, 8):
        _, rows = run_select(tmp_path, [directory], diversity={"max_paths": k})
        assert len(rows["rft"]) == min(k, len(codes))


def test_problems_outside_the_difficulty_band_give_no_rows(tmp_path, samples):
    report, rows = run_select(tmp_path, [samples], pass_rate_band=[0.25, 0.75])
    kept = {r["problem_id"] for name in rows for r in rows[name]}
    assert kept == {"mixed"} and report["dropped"]["problems_outside_band"] == 2


def test_a_correct_trace_without_a_boxed_answer_of_its_own_is_no_rft_row(tmp_path):
    directory = write_samples(tmp_path / "s", {"p": ("What is 1 + 1?", "2", [
        candidate(0, "2", True, "print(2)", answer_source="code_output"), candidate(1, "3", False)])})
    _, strict = run_select(tmp_path, [directory])
    assert strict["rft"] == []
    _, loose = run_select(tmp_path, [directory], require_well_formed=False)
    assert len(loose["rft"]) == 1


def test_a_mixed_language_correct_trace_is_no_rft_row_and_loses_a_language_pair(tmp_path):
    directory = write_samples(tmp_path / "s", {"p": ("What is 1 + 1?", "2", [
        candidate(0, "2", True, "print(2)"), candidate(1, "2", True, "print(1 + 1)", prose="我们计算一下。")])})
    report, rows = run_select(tmp_path, [directory])
    assert [r["candidate"][-1] for r in rows["rft"]] == ["0"]
    (pair,) = [r for r in rows["dpo"] if r["kind"] == "language"]
    assert "我们" in pair["rejected"][0]["content"] and "我们" not in pair["chosen"][0]["content"]
    assert report["dropped"]["mixed_language"] == 1


def test_script_changes_are_mixed_language_but_one_script_or_math_letters_are_not():
    assert is_mixed_language("First we add the numbers, 然后 we divide.")
    assert is_mixed_language("Сначала we add.")
    assert not is_mixed_language("我们先把两个数相加,然后除以二。")
    assert not is_mixed_language("Let α + β = π, so the angle θ is ℝ-valued with 𝑥 > 0.")


def test_tool_outputs_are_not_read_for_the_language_check():
    fences = training_format(KitConfig())
    text = "We print it.\n```python\nprint(s)\n```\n```output\n你好世界\n```\nThe answer is $\\boxed{1}$."
    assert is_mixed_language(text)
    assert not is_mixed_language(model_written_text(text, fences.output_spans))


def test_every_pair_is_two_traces_of_one_problem_chosen_ranked_above_rejected(tmp_path, samples):
    _, rows = run_select(tmp_path, [samples])
    texts = {pid: {candidate["text"]: candidate["correct"] for candidate in records}
             for pid, (_, _, records) in PROBLEMS.items()}
    assert rows["dpo"] and rows["rm"]
    for row in rows["dpo"] + rows["rm"]:
        chosen, rejected = row["chosen"][0]["content"], row["rejected"][0]["content"]
        assert chosen in texts[row["problem_id"]] and rejected in texts[row["problem_id"]]
        if row["kind"] == "correct_wrong":
            assert texts[row["problem_id"]][chosen] and not texts[row["problem_id"]][rejected]


def test_length_pairs_prefer_the_shorter_correct_trace_by_the_ratio(tmp_path):
    tokens = [100, 250, 400, 1000]
    codes = ["print(2)", "print(1 + 1)", "import sympy\nprint(sympy.Integer(2))", "print(sum([1, 1]))"]
    directory = write_samples(tmp_path / "s", {"p": ("What is 1 + 1?", "2", [
        candidate(i, "2", True, code, n) for i, (code, n) in enumerate(zip(codes, tokens))])})
    _, rows = run_select(tmp_path, [directory], dpo_pairs=["length"], length_ratio=2.0)
    by_text = {trace(code, "2"): n for code, n in zip(codes, tokens)}
    lengths = sorted((by_text[r["chosen"][0]["content"]], by_text[r["rejected"][0]["content"]]) for r in rows["dpo"])
    assert lengths == [(100, 1000)]  # 400 < 2 x 250: too close in length to say which is better
    assert all(r["kind"] == "length" for r in rows["dpo"])


def test_correct_wrong_pairs_come_only_from_problems_in_the_hard_band(tmp_path):
    problems = {"often": ("Sum 1..10.", "55", [candidate(i, "55", True, f"print({i} * 0 + 55)") for i in range(3)]
                          + [candidate(3, "54", False, "print(54)")]),
                "seldom": ("What is 1 + 1?", "2", [candidate(0, "2", True, "print(2)")]
                           + [candidate(i, "3", False, f"print({i} + 2)") for i in range(1, 4)])}
    directory = write_samples(tmp_path / "s", problems)
    _, rows = run_select(tmp_path, [directory], dpo_pairs=["correct_wrong"], hard_pair_band=[0.0, 0.5])
    assert {r["problem_id"] for r in rows["dpo"]} == {"seldom"}
    assert {r["problem_id"] for r in rows["rm"]} == {"often", "seldom"}  # the reward model learns from all


def test_kto_rows_label_clean_correct_paths_desirable_and_wrong_paths_undesirable(tmp_path, samples):
    _, rows = run_select(tmp_path, [samples])
    truth = {(pid, c["text"]): c["correct"] for pid, (_, _, records) in PROBLEMS.items() for c in records}
    assert {r["label"] for r in rows["kto"]} == {True, False}
    assert all(truth[(r["problem_id"], r["completion"][0]["content"])] == r["label"] for r in rows["kto"])


def test_cancelled_and_kit_error_traces_are_in_no_training_set(tmp_path):
    directory = write_samples(tmp_path / "s", {"p": ("What is 1 + 1?", "2", [
        candidate(0, "2", True, "print(2)"),
        candidate(1, "2", True, "print(1 + 1)", status="cancelled", reason="cancelled"),
        candidate(2, "3", False, "print(3)", status="pruned", reason="error: RuntimeError('sandbox')")])})
    report, rows = run_select(tmp_path, [directory])
    used = {r["candidate"] for r in rows["rft"] + rows["kto"]}
    used |= {r[k] for r in rows["dpo"] + rows["rm"] for k in ("chosen_candidate", "rejected_candidate")}
    assert used == {f"{directory}:0:0"}
    assert report["dropped"]["cancelled"] == 1 and report["dropped"]["kit_error"] == 1


def test_a_reward_threshold_keeps_only_correct_traces_scored_above_it(tmp_path):
    directory = write_samples(tmp_path / "s", {"p": ("What is 1 + 1?", "2", [
        candidate(0, "2", True, "print(2)", reward=0.9), candidate(1, "2", True, "print(1 + 1)", reward=0.1),
        candidate(2, "3", False, "print(3)", reward=0.5)])})
    _, rows = run_select(tmp_path, [directory], min_reward_score=0.5)
    assert [r["candidate"][-1] for r in rows["rft"]] == ["0"]


def test_a_reward_threshold_on_samples_without_scores_is_refused_naming_the_directory(tmp_path, samples):
    with pytest.raises(ValueError, match="no reward_score"):
        run_select(tmp_path, [samples], min_reward_score=0.5)


def test_problems_overlapping_an_evaluation_split_are_dropped_by_default(tmp_path):
    (gsm8k,), _ = load_split("gsm8k", 1)
    directory = write_samples(tmp_path / "s", {"leak": (gsm8k.problem, gsm8k.answer, [candidate(0, gsm8k.answer, True)]),
                                               "clean": ("What is 1 + 1?", "2", [candidate(0, "2", True)])})
    report = select(SelectArguments(samples=[directory], output_dir=str(tmp_path / "out")))
    rows = [json.loads(line) for line in (tmp_path / "out" / "rft.jsonl").read_text().splitlines()]
    assert {r["problem_id"] for r in rows} == {"clean"} and report["problems_decontaminated"] == 1


def test_rft_rows_are_the_kits_prompt_and_trace_as_train_sft_reads_them(tmp_path, samples):
    run_select(tmp_path, [samples])
    rows = load_messages(tmp_path / "out" / "rft.jsonl", decontaminate=False)
    by_text = {c["text"]: pid for pid, (_, _, records) in PROBLEMS.items() for c in records}
    for row in rows:
        prompt, completion = row["messages"][:-1], row["messages"][-1]["content"]
        assert prompt == chat_messages(PROBLEMS[by_text[completion]][0], CFG.prompt_template, CFG.system_prompt)


def test_samples_written_with_different_prompts_are_not_pooled(tmp_path, samples):
    other = write_samples(tmp_path / "other", PROBLEMS, dataclasses.replace(CFG, prompt_template="Q: {problem}"))
    with pytest.raises(ValueError, match="prompt_template"):
        run_select(tmp_path, [samples, other])


def test_harmony_samples_are_refused_with_the_reason(tmp_path):
    cfg = dataclasses.replace(CFG, tool_format=dataclasses.replace(CFG.tool_format, kind="harmony"))
    directory = write_samples(tmp_path / "s", PROBLEMS, cfg)
    with pytest.raises(ValueError, match="harmony has no training rendering"):
        run_select(tmp_path, [directory])


def test_reference_solutions_make_rows_for_a_model_that_is_never_right(tmp_path):
    rows = [json.loads(line) for line in Path("train/data/tir_traces_sample.jsonl").read_text().splitlines()[:2]]
    directory = write_samples(tmp_path / "s", {r["id"]: (r["problem"], r["answer"], [candidate(0, "-1", False)])
                                               for r in rows})
    report, out = run_select(tmp_path, [directory], reference_solutions="train/data/tir_traces_sample.jsonl")
    assert len(out["rft"]) == 2 and all(r["candidate"] == "reference" for r in out["rft"])
    assert {r["kind"] for r in out["dpo"]} == {"correct_wrong"} and report["problems_with_reference"] == 2


def test_the_report_counts_distinct_paths_and_draws_them(tmp_path, samples):
    report, _ = run_select(tmp_path, [samples])
    paths = {p["problem_id"]: p["distinct_paths"] for p in report["per_problem"]}
    assert paths == {"mixed": 2, "easy": 2, "hard": 0}
    assert {p["problem_id"]: p["distinct_sampled_paths"] for p in report["per_problem"]} == {"mixed": 4, "easy": 2, "hard": 2}
    assert (tmp_path / "out" / "select.png").stat().st_size > 0 and "distinct" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.parametrize("field, value, message", [
    ("outputs", ["sft"], "outputs: unknown"), ("pass_rate_band", [0.8, 0.2], "pass_rate_band"),
    ("length_ratio", 1.0, "length_ratio"), ("dpo_pairs", ["short"], "dpo_pairs: unknown"),
])
def test_a_bad_setting_is_refused_naming_it(field, value, message):
    with pytest.raises(ValueError, match=message):
        SelectArguments(samples=["x"], output_dir="y", **{field: value})
