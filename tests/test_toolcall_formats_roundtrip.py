"""Training renders a tool-integrated solution the way the kit's loop reads and extends it, for
each text tool-call format (kit/toolcalls/): fed to the format step by step as vLLM would feed it
(each step ends at the first stop string the model writes, kept in its text), a rendered solution
runs exactly its cells' code, the text after each stop is exactly the kit's reply to that cell's
output, and the loss mask (``output_spans``) covers exactly those replies.

The training side is ``train.chats.training_format`` (no tokenizer); the loop side is
``kit.toolcalls.make_format`` with an encoder, as ``kit.sctir`` builds it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from kit.config import KitConfig, ToolFormatConfig
from kit.engine import GenerationStep
from kit.toolcalls import Finish, KeepWriting, RunCode, TaggedFormat, make_format, stop_strings
from train.chats import TIR_TRACES, training_format

OUTPUT_MAX_CHARS = 40  # short, so that the long outputs below are truncated

TOOL_FORMATS = {
    "fences-output_fence": ToolFormatConfig(),
    "fences-code_close": ToolFormatConfig(code_trigger="code_close"),
    "tagged-openmath-nemotron": ToolFormatConfig(kind="tagged"),
    "tagged-llm-code": ToolFormatConfig(kind="tagged", code_begin="<llm-code>\n", code_end="</llm-code>\n",
                                        code_output_begin="<llm-code-output>\n",
                                        code_output_end="</llm-code-output>\n"),
    "tagged-no-newlines": ToolFormatConfig(kind="tagged", code_begin="[[run]]", code_end="[[/run]]",
                                           code_output_begin="[[out]]", code_output_end="[[/out]]"),
}


@dataclass(frozen=True)
class Cell:
    code: str
    output: str


def fenced(*parts: str | Cell) -> str:
    """A solution as the training data stores it (Numina / ToRA fences)."""
    return "".join(p if isinstance(p, str) else f"```python\n{p.code}```\n```output\n{p.output}\n```\n" for p in parts)


def cells_of(*parts: str | Cell) -> list[Cell]:
    return [p for p in parts if isinstance(p, Cell)]


TRACEBACK = ("Traceback (most recent call last):\n" + '  File "<cell>", line 1\n' * 20
             + "ZeroDivisionError: division by zero")
SOLUTIONS = {
    "one-cell": ("Let us compute.\n", Cell("x = 2 + 2\nprint(x)\n", "4"), "So the answer is $\\boxed{4}$."),
    "three-cells": (
        "First the sum.\n", Cell("s = sum(range(10))\nprint(s)\n", "45"),
        "Now a long list.\n", Cell("print(list(range(100)))\n", str(list(range(100)))),
        "And an error:\n", Cell("print(1 / 0)\n", TRACEBACK),
        "Hence $\\boxed{45}$."),
    "empty-output": ("Set it.\n", Cell("x = 1\n", ""), "Nothing printed; $\\boxed{1}$."),
    "empty-output-then-a-cell": ("Set it.\n", Cell("x = 1\n", ""), "Then:\n", Cell("print(x)\n", "1"), "$\\boxed{1}$"),
    "fence-inside-output-line": ("Print markup.\n", Cell("print('a ``` b')\n", "a ``` b"), "$\\boxed{0}$"),
    "fence-inside-code-string": ("Quote.\n", Cell('s = "```"\nprint(len(s))\n', "3"), "$\\boxed{3}$"),
    "cells-back-to-back": (Cell("a = 3\nprint(a)\n", "3"), Cell("print(a * a)\n", "9"), "$\\boxed{9}$"),
}


def formats(name: str) -> tuple:
    """(training format, the loop's format, the engine's stop strings) for one tool format."""
    cfg = KitConfig(tool_format=TOOL_FORMATS[name], output_max_chars=OUTPUT_MAX_CHARS)
    loop = make_format(cfg, lambda text: [ord(ch) for ch in text])
    return training_format(cfg), loop, stop_strings(cfg.tool_format)


@dataclass
class KitRun:
    codes: list[str]  # the code of each RunCode, in order
    after_stops: list[str]  # the rendered text where the kit's reply to each cell goes
    replies: list[str]  # reply(output).text of each cell
    spans: list[tuple[int, int]]  # where the replies are
    end: object  # the last action


def kit_run(loop, stops: list[str], rendered: str, outputs: list[str]) -> KitRun:
    """Feed ``rendered`` to the loop's format as vLLM and kit.sctir would: a step ends at the first
    stop string in the model's text (kept); after a RunCode the kit's reply for the next output
    follows, and the model's next step starts after it (so a stop string inside a reply is
    never seen)."""
    run = KitRun([], [], [], [], None)
    step_start = scan = 0
    while True:
        hits = [(found, stop) for stop in stops if (found := rendered.find(stop, scan)) >= 0]
        if not hits:
            run.end = loop.after_step(rendered, GenerationStep([], rendered[step_start:], "stop", None))
            return run
        found, stop = min(hits)
        cut = found + len(stop)
        run.end = action = loop.after_step(rendered[:cut], GenerationStep([], rendered[step_start:cut], "stop", stop))
        if isinstance(action, KeepWriting):
            step_start = scan = cut
            continue
        if not isinstance(action, RunCode) or len(run.codes) == len(outputs):
            return run
        reply = loop.reply(outputs[len(run.codes)]).text
        run.codes.append(action.code)
        run.replies.append(reply)
        run.after_stops.append(rendered[cut:cut + len(reply)])
        run.spans.append((cut, cut + len(reply)))
        step_start = scan = cut + len(reply)


def rendered_run(name: str, parts: tuple) -> tuple:
    training, loop, stops = formats(name)
    rendered = training.render_solution(fenced(*parts))
    cells = cells_of(*parts)
    return training, rendered, cells, kit_run(loop, stops, rendered, [c.output for c in cells])


@pytest.mark.parametrize("solution", SOLUTIONS)
@pytest.mark.parametrize("name", TOOL_FORMATS)
def test_each_stop_runs_exactly_the_cells_code(name, solution):
    _, _, cells, run = rendered_run(name, SOLUTIONS[solution])
    assert run.codes == [c.code for c in cells]
    assert run.end == Finish("eos")  # the model's last step ends the candidate


@pytest.mark.parametrize("solution", SOLUTIONS)
@pytest.mark.parametrize("name", TOOL_FORMATS)
def test_the_text_after_each_stop_is_the_kits_reply(name, solution):
    _, _, cells, run = rendered_run(name, SOLUTIONS[solution])
    assert len(run.replies) == len(cells)
    assert run.after_stops == run.replies


@pytest.mark.parametrize("solution", SOLUTIONS)
@pytest.mark.parametrize("name", TOOL_FORMATS)
def test_the_loss_mask_covers_exactly_the_kits_replies(name, solution):
    training, rendered, cells, run = rendered_run(name, SOLUTIONS[solution])
    assert len(run.spans) == len(cells)
    assert training.output_spans(rendered) == run.spans


def test_long_outputs_are_rendered_truncated():
    training, _, _, run = rendered_run("tagged-openmath-nemotron", SOLUTIONS["three-cells"])
    assert "characters truncated" in run.replies[1] and run.replies[2].endswith("division by zero\n```\n")
    assert str(list(range(100))) not in training.render_solution(fenced(*SOLUTIONS["three-cells"]))


# --- the vendored ToRA traces: real model solutions, with their steps' code and outputs recorded

VENDORED = [json.loads(line) for line in TIR_TRACES.read_text().splitlines()]


@pytest.mark.parametrize("name", TOOL_FORMATS)
def test_every_vendored_trace_round_trips(name):
    training, loop, stops = formats(name)
    for trace in VENDORED:
        rendered = training.render_solution(trace["trace"].strip())
        run = kit_run(loop, stops, rendered, [step["recorded_output"] for step in trace["steps"]])
        # The steps record their code without its last newline; the fenced block has it.
        assert run.codes == [step["code"].rstrip("\n") + "\n" for step in trace["steps"]], trace["id"]
        assert run.after_stops == run.replies, trace["id"]
        assert training.output_spans(rendered) == run.spans, trace["id"]
        assert run.end == Finish("eos"), trace["id"]


# --- TaggedFormat.after_step on its own

def tagged() -> TaggedFormat:
    return TaggedFormat(ToolFormatConfig(kind="tagged"), OUTPUT_MAX_CHARS, lambda text: [])


def step(text: str, finish_reason: str = "stop", stop_string: str | None = "```\n</tool_call>\n") -> GenerationStep:
    return GenerationStep([], text, finish_reason, stop_string)


def test_tagged_code_end_without_code_begin_is_malformed():
    text = "Just text.\n```\n</tool_call>\n"
    assert tagged().after_step(text, step(text)) == Finish("malformed_code")


def test_tagged_empty_code_is_refused():
    text = "Try:\n<tool_call>\n```python\n  \n```\n</tool_call>\n"
    assert tagged().after_step(text, step(text)) == Finish("empty_code")


def test_tagged_eos_and_length_end_the_candidate():
    assert tagged().after_step("So $\\boxed{4}$.", step("So $\\boxed{4}$.", "stop", None)) == Finish("eos")
    text = "<tool_call>\n```python\nprint(1)\n```\n</tool_call>\n"  # length wins even on a complete cell
    assert tagged().after_step(text, step(text, "length", None)) == Finish("length")


def test_tagged_runs_the_code_after_the_last_code_begin():
    text = ("<tool_call>\n```python\nx = 1\n```\n</tool_call>\n```output\n```\n"
            "<tool_call>\n```python\nprint(2)\n```\n</tool_call>\n")
    assert tagged().after_step(text, step(text)) == RunCode("print(2)\n")
