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
runs the last python block and appends the output and the closing fence. Training
renders tool outputs the same way so that the two cannot drift apart.
"""

from __future__ import annotations


CODE_FENCE = "```python"
OUTPUT_FENCE = "```output"
CLOSE_FENCE = "```"

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


def _last_block(text: str) -> tuple[str, int] | None:
    """(code, position of its closing fence) of the block opened by the last python fence.
    The *last* opening fence, so that a model that opens a block twice ("```python\n```python\n
    code```") runs the code it wrote, not the empty text between the two fences."""
    start = text.rfind(CODE_FENCE)
    if start < 0:
        return None
    line_end = text.find("\n", start)
    if line_end < 0 or text[start + len(CODE_FENCE) : line_end].strip():
        return None
    close = text.find(CLOSE_FENCE, line_end + 1)
    return None if close < 0 else (text[line_end + 1 : close], close)


def last_code_block(text: str) -> str | None:
    """The code of the last complete python block in ``text`` (None if there is none)."""
    block = _last_block(text)
    return None if block is None else block[0]


def code_to_run(text: str, trigger: str) -> str | None:
    """The code a candidate asks to run, given its text ends on the trigger's stop string.
    None for an output fence without a preceding code block, or (code_close) when the fence
    just closed was not a python block's."""
    block = _last_block(text)
    if block is None:
        return None
    if trigger == "code_close" and text[block[1] :] not in (CLOSE_FENCE, CLOSE_FENCE + "\n"):
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


def render_prompt(problem: str, template: str = DEFAULT_PROMPT_TEMPLATE) -> str:
    """The user message for a problem. Plain replacement, not str.format, so templates
    can contain LaTeX braces such as \\boxed{} without escaping."""
    return template.replace("{problem}", problem.strip())


def chat_messages(problem: str, template: str = DEFAULT_PROMPT_TEMPLATE, system_prompt: str = "") -> list[dict]:
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return messages + [{"role": "user", "content": render_prompt(problem, template)}]
