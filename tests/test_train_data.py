"""Training data: loaders, GSM8K/TIR rendering, the loss mask and decontamination."""

from __future__ import annotations

import copy
import json
import re
import sys

import pytest

from eval.splits import load_split
from kit.config import KitConfig, ToolFormatConfig
from kit.embedded_model import resolve_model_path
from kit.tir import DEFAULT_PROMPT_TEMPLATE, OUTPUT_FENCE, render_prompt
from train.chats import (GSM8K_SLICE, IGNORE_INDEX, TIR_TRACES, end_of_turn, load_messages, tokenize_with_mask,
                         training_format)
from train.decontaminate import build_eval_ngrams, decontaminate, normalize, write_report

TIR_ANSWER = (
    "Let us compute.\n```python\nx = 2 + 2\nprint(x)\n```\n```output\n4\n```\n"
    "So the answer is $\\boxed{4}$."
)
_OUTPUT_BODY = re.compile(re.escape(OUTPUT_FENCE) + r"\n(.*?)\n?```", re.DOTALL)
_TRUNCATION_MARKER = re.compile(r"\n\.\.\. \[\d+ characters truncated\] \.\.\.\n")
TAGGED = training_format(KitConfig(tool_format=ToolFormatConfig(kind="tagged")))


@pytest.fixture(scope="module")
def tokenizer():
    # The embedded model's own fast tokenizer (what AutoTokenizer resolves to), imported
    # directly because AutoTokenizer's import pulls in torch (~10 s on 2 cores).
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(resolve_model_path(""))


def _chat(answer: str = TIR_ANSWER) -> list[dict]:
    return [{"role": "system", "content": "You solve problems."},
            {"role": "user", "content": "What is 2 + 2?"},
            {"role": "assistant", "content": answer}]


def _labelled_text(tokenizer, encoded: dict) -> str:
    return tokenizer.decode([t for t, label in zip(encoded["input_ids"], encoded["labels"])
                             if label != IGNORE_INDEX])


def _write_jsonl(path, rows: list[dict]):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# --- loss mask -------------------------------------------------------------------------------

def test_assistant_text_and_end_of_turn_are_labelled(tokenizer):
    encoded = tokenize_with_mask(tokenizer, _chat("The answer is 4."))
    assert _labelled_text(tokenizer, encoded) == "The answer is 4." + tokenizer.eos_token


def test_system_user_and_template_tokens_are_masked(tokenizer):
    messages = _chat("The answer is 4.")
    encoded = tokenize_with_mask(tokenizer, messages)
    prompt = tokenizer.apply_chat_template(messages[:2], tokenize=False, add_generation_prompt=True)
    n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert encoded["input_ids"][:n_prompt] == tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert set(encoded["labels"][:n_prompt]) == {IGNORE_INDEX}
    assert encoded["labels"][n_prompt] != IGNORE_INDEX


def test_tool_output_is_masked_but_output_fence_is_labelled(tokenizer):
    labelled = _labelled_text(tokenizer, tokenize_with_mask(tokenizer, _chat()))
    assert labelled.count(OUTPUT_FENCE) == 1
    assert "```output\n4" not in labelled
    assert labelled.endswith("print(x)\n```\n```outputSo the answer is $\\boxed{4}$." + tokenizer.eos_token)


def test_tool_output_is_labelled_without_masking(tokenizer):
    encoded = tokenize_with_mask(tokenizer, _chat(), mask_tool_outputs=False)
    assert _labelled_text(tokenizer, encoded) == TIR_ANSWER + tokenizer.eos_token


def test_tagged_chats_mask_the_kits_reply_and_label_the_code_tags(tokenizer):
    answer = TAGGED.render_solution(TIR_ANSWER)
    assert answer == ("Let us compute.\n<tool_call>\n```python\nx = 2 + 2\nprint(x)\n```\n</tool_call>\n"
                      "```output\n4\n```\nSo the answer is $\\boxed{4}$.")
    labelled = _labelled_text(tokenizer, tokenize_with_mask(tokenizer, _chat(answer), tool_format=TAGGED))
    assert labelled == ("Let us compute.\n<tool_call>\n```python\nx = 2 + 2\nprint(x)\n```\n</tool_call>\n"
                        "So the answer is $\\boxed{4}$." + tokenizer.eos_token)


def test_code_close_chats_mask_the_output_fence_the_kit_writes(tokenizer):
    code_close = training_format(KitConfig(tool_format=ToolFormatConfig(code_trigger="code_close")))
    encoded = tokenize_with_mask(tokenizer, _chat(code_close.render_solution(TIR_ANSWER)), tool_format=code_close)
    assert _labelled_text(tokenizer, encoded).endswith("print(x)\n```\nSo the answer is $\\boxed{4}$."
                                                       + tokenizer.eos_token)


def test_python_code_is_labelled(tokenizer):
    labelled = _labelled_text(tokenizer, tokenize_with_mask(tokenizer, _chat()))
    assert "```python\nx = 2 + 2\nprint(x)\n```" in labelled


def test_a_long_chat_is_tokenized_whole(tokenizer):
    # Cutting is the trainer's business (train/sft.py): here the answer and end of turn survive.
    long_answer = "Let us count. " * 300 + "So $\\boxed{4}$."
    encoded = tokenize_with_mask(tokenizer, _chat(long_answer))
    assert len(encoded["input_ids"]) == len(encoded["labels"]) == len(encoded["attention_mask"]) > 600
    assert _labelled_text(tokenizer, encoded) == long_answer + tokenizer.eos_token


@pytest.fixture(scope="module")
def qwen_base_style_tokenizer():
    # As in Qwen2.5 base models: ChatML turns end with <|im_end|>, but eos is <|endoftext|>.
    from train.tiny_model import IM_END, PAD, build_tokenizer

    tokenizer = build_tokenizer()
    tokenizer.eos_token = PAD
    assert (tokenizer.eos_token, IM_END) == ("<|endoftext|>", "<|im_end|>")
    return tokenizer


def test_end_of_turn_is_the_templates_marker_not_eos(qwen_base_style_tokenizer):
    assert end_of_turn(qwen_base_style_tokenizer) == "<|im_end|>"
    encoded = tokenize_with_mask(qwen_base_style_tokenizer, _chat("The answer is 4."))
    assert _labelled_text(qwen_base_style_tokenizer, encoded) == "The answer is 4.<|im_end|>"


def test_a_template_that_never_ends_a_turn_is_refused(qwen_base_style_tokenizer):
    tokenizer = copy.copy(qwen_base_style_tokenizer)
    tokenizer.chat_template = "{% for m in messages %}{{ m['role'] + ': ' + m['content'] }}{% endfor %}"
    with pytest.raises(ValueError, match="never learn to stop"):
        tokenize_with_mask(tokenizer, _chat("The answer is 4."))


# --- decontamination -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def aime_words() -> list[str]:
    problems, _ = load_split("aime")
    return next(normalize(p.problem) for p in problems if len(normalize(p.problem)) >= 40)


@pytest.fixture(scope="module")
def all_eval_ngrams():
    return build_eval_ngrams()


def test_row_copying_13_words_of_an_aime_problem_is_dropped(aime_words, all_eval_ngrams):
    row = {"id": "planted", "problem": "zebra quokka " + " ".join(aime_words[10:23]) + " narwhal"}
    kept, report = decontaminate([row, {"id": "clean", "problem": "zebra quokka narwhal"}], all_eval_ngrams)
    assert [r["id"] for r in kept] == ["clean"]
    assert report["dropped_rows"][0]["id"] == "planted"
    assert "aime" in report["dropped_rows"][0]["splits"]


def test_row_sharing_only_12_words_is_kept(aime_words, all_eval_ngrams):
    row = {"id": "near", "problem": "zebra quokka " + " ".join(aime_words[10:22]) + " narwhal"}
    kept, report = decontaminate([row], all_eval_ngrams)
    assert kept == [row] and report["dropped"] == 0


def test_case_and_punctuation_differences_still_match(aime_words, all_eval_ngrams):
    shouted = ", ".join(w.upper() for w in aime_words[10:25]) + "?!"
    kept, report = decontaminate([{"id": "shouted", "problem": shouted}], all_eval_ngrams)
    assert kept == [] and report["dropped_rows"][0]["splits"] == ["aime"]


def test_report_is_written_as_json(tmp_path, aime_words, all_eval_ngrams):
    _, report = decontaminate([{"id": "p", "problem": " ".join(aime_words[:13])}], all_eval_ngrams)
    path = write_report(report, tmp_path / "sub" / "report.json")
    assert json.loads(path.read_text())["dropped_rows"][0]["id"] == "p"


def test_vendored_tir_traces_are_gsm8k_test_problems_and_get_dropped_by_default():
    # The sample traces are model outputs on GSM8K *test* problems: fine for smoke runs with
    # decontamination off, never for a model evaluated on the gsm8k split.
    assert load_messages(TIR_TRACES) == []


# --- loaders ---------------------------------------------------------------------------------

def test_messages_rows_load(tmp_path):
    path = _write_jsonl(tmp_path / "m.jsonl", [{"id": "a", "messages": [
        {"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": TIR_ANSWER}]}])
    (row,) = load_messages(path, decontaminate=False)
    assert row["id"] == "a"
    assert row["messages"][0] == {"role": "user", "content": render_prompt("What is 2 + 2?", DEFAULT_PROMPT_TEMPLATE)}
    assert row["messages"][1] == {"role": "assistant", "content": TIR_ANSWER}


def test_problem_solution_rows_load_with_bare_problem(tmp_path):
    path = _write_jsonl(tmp_path / "s.jsonl", [{"problem": "What is 1 + 1?", "solution": "It is $\\boxed{2}$."}])
    (row,) = load_messages(path, decontaminate=False)
    assert row["id"] == "0"
    assert row["messages"] == [{"role": "user", "content": "What is 1 + 1?"},
                               {"role": "assistant", "content": "It is $\\boxed{2}$."}]


def test_trace_rows_load_as_tir(tmp_path):
    path = _write_jsonl(tmp_path / "t.jsonl", [{"id": "t", "problem": "What is 2 + 2?", "trace": TIR_ANSWER}])
    (row,) = load_messages(path, decontaminate=False, system_prompt="Be brief.")
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
    assert row["messages"][1]["content"] == render_prompt("What is 2 + 2?")
    assert row["messages"][2]["content"] == TIR_ANSWER


def test_missing_column_error_names_file_line_and_column(tmp_path):
    path = _write_jsonl(tmp_path / "bad.jsonl", [{"problem": "ok", "solution": "fine"},
                                                 {"problem": "no solution here", "answer": "3"}])
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: no 'solution'"):
        load_messages(path, decontaminate=False)


def test_hub_id_without_datasets_package_says_what_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(ImportError, match="pip install datasets"):
        load_messages("AI-MO/NuminaMath-TIR", decontaminate=False)


def test_gsm8k_slice_renders_boxed_answer_without_calculator_annotations():
    source = [json.loads(line) for line in GSM8K_SLICE.read_text().splitlines()]
    answers = {r["id"]: r["answer"] for r in source}
    rows = load_messages(GSM8K_SLICE, decontaminate=False)
    assert len(rows) == 400
    for row in rows:
        solution = row["messages"][-1]["content"]
        assert "<<" not in solution
        assert re.findall(r"\\boxed\{([^{}]*)\}", solution)[-1] == answers[row["id"]]


def test_vendored_tir_traces_load_with_outputs_within_the_truncation_limit():
    rows = load_messages(TIR_TRACES, decontaminate=False, drop_incorrect=False,
                         tool_format=training_format(KitConfig(output_max_chars=60)))
    assert len(rows) == 300
    bodies = [b for row in rows for b in _OUTPUT_BODY.findall(row["messages"][-1]["content"])]
    assert len(bodies) >= 300
    assert any(_TRUNCATION_MARKER.search(b) for b in bodies)
    assert all(len(_TRUNCATION_MARKER.sub("", b)) <= 60 for b in bodies)


def test_incorrect_traces_are_dropped_by_default():
    traces = [json.loads(line) for line in TIR_TRACES.read_text().splitlines()]
    n_correct = sum(t["pred_correct"] is not False for t in traces)
    assert len(load_messages(TIR_TRACES, decontaminate=False)) == n_correct < len(traces)


def test_output_rerendering_matches_the_kit_output_block():
    long = "```python\nprint('x' * 500)\n```\n```output\n" + "x" * 500 + "\n```\nDone."
    rendered = training_format(KitConfig(output_max_chars=200)).render_solution(long)
    assert rendered.startswith("```python\nprint('x' * 500)\n```\n```output\n" + "x" * 100 + "\n... [300")
    assert rendered.endswith("x" * 100 + "\n```\nDone.")


def test_tir_rows_load_in_the_tool_format_given(tmp_path):
    path = _write_jsonl(tmp_path / "t.jsonl", [{"id": "t", "problem": "What is 2 + 2?", "trace": TIR_ANSWER}])
    (row,) = load_messages(path, decontaminate=False, tool_format=TAGGED)
    assert row["messages"][-1]["content"] == TAGGED.render_solution(TIR_ANSWER)
    assert "<tool_call>" in row["messages"][-1]["content"]


def test_harmony_has_no_training_rendering_and_says_which_field():
    with pytest.raises(ValueError, match=r"tool_format\.kind: harmony has no training rendering"):
        training_format(KitConfig(tool_format=ToolFormatConfig(kind="harmony")))


def test_sft_recipes_render_in_their_kits_tool_format():
    from train.sft import make_parser

    recipe = ["--config", "train/recipes/smoke/sft_tir.yaml", "--model_name_or_path", "unused"]
    script_args = make_parser().parse_args_and_config(recipe)[0]
    assert script_args.tool_format().trigger == "output_fence"  # as sample.yaml samples it
    tagged = make_parser().parse_args_and_config(recipe + ["--kit", "{tool_format: {kind: tagged}}"])[0]
    assert tagged.tool_format().render_solution(TIR_ANSWER) == TAGGED.render_solution(TIR_ANSWER)
    with pytest.raises(ValueError, match=r"tool_format\.kind: harmony"):
        make_parser().parse_args_and_config(recipe + ["--kit", "{tool_format: {kind: harmony}}"])


def test_rows_without_an_id_get_the_ids_the_evaluation_splits_give_them(tmp_path):
    path = _write_jsonl(tmp_path / "noid.jsonl", [{"problem": f"What is {i} + {i}?", "answer": str(2 * i),
                                                   "solution": f"$\\boxed{{{2 * i}}}$"} for i in range(3)])
    problems, _ = load_split(str(path))
    assert [row["id"] for row in load_messages(path, decontaminate=False)] == [p.id for p in problems]


def test_reference_solutions_are_rendered_in_the_sampling_format():
    from train.select import Problem, reference_traces

    problems, _ = load_split(str(TIR_TRACES), 2)
    pool = {p.id: Problem(p.id, p.problem, p.answer) for p in problems}
    assert reference_traces(str(TIR_TRACES), pool, KitConfig(tool_format=ToolFormatConfig(kind="tagged"))) == 2
    assert all("</tool_call>\n```output\n" in p.references[0].text for p in pool.values())
    with pytest.raises(ValueError, match=r"tool_format\.kind: harmony"):
        reference_traces(str(TIR_TRACES), pool, KitConfig(tool_format=ToolFormatConfig(kind="harmony")))