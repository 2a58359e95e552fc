"""Properties of the TIR text format that the sampling loop and training both rely on."""

import pytest

from kit.tir import (CLOSE_FENCE, DEFAULT_PROMPT_TEMPLATE, OUTPUT_FENCE, chat_messages, code_stop_string,
                     open_code_block, output_block, render_prompt, truncate_output)

OUTPUTS = ["1", "  indented\n  block  ", "X marks X", "a" * 50, "line\n" * 12 + "Error: last"]


@pytest.mark.parametrize("output", OUTPUTS)
def test_an_output_within_the_limit_is_kept_whole_less_its_outer_newlines(output):
    for max_chars in (len(output), len(output) + 1, 1000):
        assert truncate_output("\n" + output + "\n\n", max_chars) == output


@pytest.mark.parametrize("max_chars", [1, 2, 7, 10, 11])
def test_a_truncated_output_keeps_max_chars_of_head_and_tail_and_counts_the_rest(max_chars):
    output = "".join(chr(ord("a") + i % 26) for i in range(60))
    head, marker, tail = truncate_output(output, max_chars).split("\n")
    assert len(head) + len(tail) == max_chars and len(head) == max_chars // 2
    assert output.startswith(head) and output.endswith(tail)
    assert marker == f"... [{len(output) - max_chars} characters truncated] ..."


def test_an_empty_output_is_just_the_closing_fence():
    assert output_block("\n\n", 100) == f"\n{CLOSE_FENCE}\n"
    assert output_block("4\n", 100) == f"\n4\n{CLOSE_FENCE}\n"


def test_a_fence_line_still_being_written_opens_no_block():
    # "```py" may yet become "```python" or "```pyth": the block opens at the line's end.
    assert not open_code_block("Let me compute.\n```python")
    assert open_code_block("Let me compute.\n```python\n")


def test_each_trigger_stops_where_its_code_may_run():
    assert code_stop_string("output_fence") == OUTPUT_FENCE
    assert code_stop_string("code_close") == CLOSE_FENCE + "\n"


def test_the_prompt_is_the_template_with_the_stripped_problem():
    assert render_prompt("  What is 1+1?\n") == DEFAULT_PROMPT_TEMPLATE.replace("{problem}", "What is 1+1?")
    assert render_prompt("x", "Q: {problem} \\boxed{}") == "Q: x \\boxed{}"


def test_chat_messages_have_a_system_turn_only_when_given_one():
    assert chat_messages(" x ", "Q: {problem}") == [{"role": "user", "content": "Q: x"}]
    assert chat_messages("x", "Q: {problem}", system_prompt="Be brief.") == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q: x"}]
