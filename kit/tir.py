"""The tool-integrated-reasoning text format, defined once for inference and training.

A TIR solution interleaves reasoning with code cells and their outputs::

    ...reasoning...
    ```python
    print(2 + 2)
    ```
    ```output
    4
    ```
    ...more reasoning... \\boxed{4}

The model writes up to and including the output fence (``OUTPUT_FENCE``, the stop string); the kit
runs the last python block and appends the output and the closing fence. Training data stores
solutions in this form; its cells (``tool_cells``) are rendered for training by the tool-call
format the kit infers with (``kit.toolcalls``: ``render_solution``), with the very function
that writes the kit's replies, so the two cannot drift apart.

Fences are read as markdown defines them, with the spellings models write: a block opens with
```` ``` ```` and a python info string (``python``, ``py``, ``Python``, ``python3``, ``ipython``, any
case) alone on its line, and closes at the first line that is a fence alone (three or more
backticks, optionally indented, trailing whitespace allowed), so a ```` ``` ```` inside a string
of the code does not end the cell. An output fence line also closes it (a model that skips the
closing fence still means its code to run).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CODE_FENCE = "```python"
OUTPUT_FENCE = "```output"
CLOSE_FENCE = "```"

_OPEN_PYTHON = re.compile(r"```[ \t]*(?:i?python3?|py3?)[ \t\r]*$", re.IGNORECASE | re.MULTILINE)
_CLOSE_LINE = re.compile(r"^[ \t]*(?:`{3,}|```output)[ \t\r]*$", re.MULTILINE)
# An output block as training data stores it: the fence, the output (group 1, None when empty)
# and the closing fence, the first line of the fence alone after it (with its newline), so a ```
# the output prints inside a line does not end it.
STORED_OUTPUT_BLOCK = re.compile(re.escape(OUTPUT_FENCE) + r"[ \t]*\n(?:(.*?)\n)??[ \t]*```[ \t]*(?:\n|\Z)",
                                 re.DOTALL)
# An output block as the kit writes it: OUTPUT_FENCE + output_block(...).
SHOWN_OUTPUT_BLOCK = re.compile(re.escape(OUTPUT_FENCE) + r"\n(?:.*?\n)??```\n", re.DOTALL)

DEFAULT_PROMPT_TEMPLATE = (
    "{problem}\n\nPlease integrate natural language reasoning with programs to solve the problem above, "
    "and put your final answer within \\boxed{}."
)

CODE_TRIGGERS = ("output_fence", "code_close")

def code_stop_string(trigger: str) -> str:
    """The stop string after which a candidate's code may run: the output fence for models
    trained on TIR traces (they write it themselves), the closing fence for instruct models
    that were not (the kit then writes the output fence)."""
    return OUTPUT_FENCE if trigger == "output_fence" else CLOSE_FENCE + "\n"


def _code_start(text: str) -> int | None:
    """Where the code of the block opened by the last python fence begins. The *last* opening
    fence, so that a model that opens a block twice ("```python\n```python\ncode\n```") runs
    the code it wrote, not the empty text between the two fences."""
    start = None
    for match in _OPEN_PYTHON.finditer(text):
        start = match.end()
    return None if start is None or not text.startswith("\n", start) else start + 1


def _last_block(text: str) -> tuple[str, int] | None:
    """(code, end of its closing fence line) of the block opened by the last python fence,
    None when there is none or it has not closed."""
    start = _code_start(text)
    close = None if start is None else _CLOSE_LINE.search(text, start)
    return None if close is None else (text[start : close.start()], close.end())


def open_code_block(text: str) -> bool:
    """Whether ``text`` ends inside a python block (opened, no closing fence line yet): a stop
    string found there was written inside the code, a string say, and did not end the cell."""
    return _code_start(text) is not None and _last_block(text) is None


def code_to_run(text: str, trigger: str) -> str | None:
    """The code a candidate asks to run, given its text ends on the trigger's stop string.
    None when the last python block has not closed (see ``open_code_block``), for an output
    fence without a preceding code block, or (code_close) when the fence just closed was not
    a python block's."""
    block = _last_block(text)
    if block is None:
        return None
    if trigger == "code_close" and text[block[1] :].strip():
        return None
    return block[0]


def truncate_output(output: str, max_chars: int) -> str:
    """Keep the head and the tail (where an error's last line is) of a long output."""
    output = output.strip("\n")
    if len(output) <= max_chars:
        return output
    head = max_chars // 2
    tail = max_chars - head
    dropped = len(output) - max_chars
    return f"{output[:head]}\n... [{dropped} characters truncated] ...\n{output[-tail:]}"


def output_block(output: str, max_chars: int) -> str:
    """What follows the model's ``OUTPUT_FENCE`` stop string: the (truncated) output and the
    closing fence."""
    body = truncate_output(output, max_chars)
    return f"\n{body}\n{CLOSE_FENCE}\n" if body else f"\n{CLOSE_FENCE}\n"


@dataclass(frozen=True)
class ToolCell:
    """A code cell of a fenced solution as training data stores it: a python block and, nothing
    but whitespace apart, the output block after it. Positions are in the solution's text."""

    code: str  # the block's code, as ``code_to_run`` reads it
    output: str  # the stored output, not truncated
    start: int  # where the python fence opens
    code_end: int  # where the code ends: its closing fence line (or the output fence) begins
    end: int  # just past the output block


def tool_cells(solution: str) -> list[ToolCell]:
    """The cells of a tool-integrated solution (``STORED_OUTPUT_BLOCK`` outputs, each with the
    python block just before it). An output block that follows no python block, or follows one
    with text in between, is no cell; neither is a python block without an output."""
    cells = []
    cursor = 0  # a cell's python block opens after the previous output block
    for block in STORED_OUTPUT_BLOCK.finditer(solution):
        fence = block.start()
        openings = list(_OPEN_PYTHON.finditer(solution, cursor, fence))
        opening = openings[-1] if openings else None
        cursor = block.end()
        if opening is None or not solution.startswith("\n", opening.end()):
            continue
        code_start = opening.end() + 1
        close = _CLOSE_LINE.search(solution, code_start, fence)
        if close is None:  # the output fence closes the block, on a line of its own
            if not solution.startswith("\n", fence - 1):
                continue
            code_end = fence
        elif solution[close.end():fence].strip():
            continue
        else:
            code_end = close.start()
        cells.append(ToolCell(solution[code_start:code_end], block.group(1) or "", opening.start(), code_end,
                              block.end()))
    return cells


def render_prompt(problem: str, template: str = DEFAULT_PROMPT_TEMPLATE) -> str:
    """The user message for a problem. Plain replacement, not str.format, so templates
    can contain LaTeX braces such as \\boxed{} without escaping."""
    return template.replace("{problem}", problem.strip())


def chat_messages(problem: str, template: str = DEFAULT_PROMPT_TEMPLATE, system_prompt: str = "") -> list[dict]:
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return messages + [{"role": "user", "content": render_prompt(problem, template)}]
