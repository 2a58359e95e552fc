"""Tool-call formats: how a candidate asks for its python code to run, and how the output is
shown to it. One format per ``KitConfig.tool_format.kind``, used by the SC-TIR loop
(``kit.sctir``) and, for the text formats, by the training data (``train.chats``), so the model
is trained on exactly what the kit shows it:

- ``fences`` (``FencesFormat``): Numina / ToRA / Qwen2.5-Math markdown blocks, ```` ```python ````
  then ```` ```output ````; the rules are ``kit.tir``'s.
- ``tagged`` (``TaggedFormat``): four configurable strings (NeMo-Skills' ``code_begin``,
  ``code_end``, ``code_output_begin``, ``code_output_end``); the defaults are OpenMath-Nemotron's.
- ``harmony`` (``HarmonyFormat``, kit/toolcalls/harmony.py): gpt-oss's Harmony chat format, rendered
  and parsed by ``openai_harmony``; the model calls the ``python`` tool with a ``to=python``
  message ending in ``<|call|>`` and answers in the ``final`` channel.

After each generation step the loop asks the format what the step means (``after_step``):
``RunCode`` (run this code, then append ``reply(output)`` and continue), ``KeepWriting`` (a stop
string came where it does not end a cell: generate on) or ``Finish`` (the candidate ends; its
``\\boxed{}`` answer is looked for in ``answer_text``, or in its whole text when that is None).
A format never raises on what a model wrote: malformed output is a ``Finish`` with a reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from kit.config import KitConfig, ToolFormatConfig
from kit.tir import (OUTPUT_FENCE, SHOWN_OUTPUT_BLOCK, STORED_OUTPUT_BLOCK, code_stop_string, code_to_run,
                     open_code_block, output_block, tool_cells, truncate_output)


@dataclass(frozen=True)
class RunCode:
    code: str


@dataclass(frozen=True)
class KeepWriting:
    pass


@dataclass(frozen=True)
class Finish:
    reason: str  # eos | length | answer (cut at its first \boxed{}) | malformed_code | unknown_tool | ...
    answer_text: str | None = None  # where the answer is looked for; None: the candidate's whole text


Action = RunCode | KeepWriting | Finish


@dataclass(frozen=True)
class Reply:
    """A cell's output as the model is shown it: the text the trace records and its token ids."""

    text: str
    token_ids: list[int]


class ToolFormat(Protocol):
    def after_step(self, text: str, step) -> Action:
        """What a step that just ended means, given the candidate's whole text (this step's
        included) and the step itself (``kit.engine.GenerationStep``)."""

    def reply(self, output: str) -> Reply:
        """What follows the step that asked for code: the cell's (truncated) output."""


class _TextFormat:
    """What the text formats share: a step that ended on anything but the format's stop string
    ends the candidate, and a reply is the rendered output, tokenized by the engine's tokenizer."""

    stop_string: str

    def __init__(self, output_max_chars: int, encode: Callable[[str], list[int]]):
        self.output_max_chars = output_max_chars
        self.encode = encode

    def _ended(self, step) -> Finish | None:
        if step.finish_reason in ("length", "answer"):
            return Finish(step.finish_reason)
        return Finish("eos") if step.stop_string != self.stop_string else None

    def render_output(self, output: str) -> str:
        raise NotImplementedError

    def reply(self, output: str) -> Reply:
        text = self.render_output(output)
        return Reply(text, self.encode(text))


class FencesFormat(_TextFormat):
    """Markdown fences (kit/tir.py): the model writes ```` ```python ```` code, then either the output
    fence itself (``code_trigger: output_fence``) or just the closing fence (``code_close``)."""

    def __init__(self, cfg: ToolFormatConfig, output_max_chars: int, encode: Callable[[str], list[int]]):
        super().__init__(output_max_chars, encode)
        self.trigger = cfg.code_trigger
        self.stop_string = code_stop_string(self.trigger)

    def after_step(self, text: str, step) -> Action:
        ended = self._ended(step)
        if ended is not None:
            return ended
        code = code_to_run(text, self.trigger)
        if code is not None:
            return RunCode(code)
        # The stop string came inside an open python block (a fence in a string, say), or
        # (code_close) another block closed: keep writing. Each step spends tokens, so the
        # context budget ends a candidate that never closes its block.
        if self.trigger == "output_fence" and not open_code_block(text):
            return Finish("malformed_code")
        return KeepWriting()

    def render_output(self, output: str) -> str:
        shown = output_block(output, self.output_max_chars)
        # With code_close the model stopped at the closing fence: the kit writes the output fence.
        return shown if self.trigger == "output_fence" else OUTPUT_FENCE + shown

    def render_solution(self, solution: str) -> str:
        """A tool-integrated solution (data's fences, kit/tir.py) as the model writes it with the
        kit: every ```` ```output ```` block's output as ``render_output`` shows it (truncated
        alike); the rest is the model's and stays as written, except that with ``code_close`` a
        cell's code ends on the stop string itself (```` ``` ```` and a newline), directly followed
        by the kit's reply."""
        if self.trigger == "output_fence":
            return STORED_OUTPUT_BLOCK.sub(lambda m: OUTPUT_FENCE + self.render_output(m.group(1) or ""), solution)
        parts, cursor = [], 0
        for cell in tool_cells(solution):
            parts += [solution[cursor:cell.code_end], self.stop_string, self.render_output(cell.output)]
            cursor = cell.end
        return "".join(parts) + solution[cursor:]

    def output_spans(self, rendered: str) -> list[tuple[int, int]]:
        """Where the kit's replies are in a rendered solution (or a kit trace): each output block,
        after its ```` ```output ```` fence with ``output_fence`` (the stop string the model writes
        stays the model's), from the fence with ``code_close`` (the kit writes it)."""
        skip = len(OUTPUT_FENCE) if self.trigger == "output_fence" else 0
        return [(m.start() + skip, m.end()) for m in SHOWN_OUTPUT_BLOCK.finditer(rendered)]


class TaggedFormat(_TextFormat):
    """Four strings, NeMo-Skills' code tags: the code between the last ``code_begin`` and the
    ``code_end`` the model just wrote (the stop string) runs; the kit writes
    ``code_output_begin``, the truncated output and ``code_output_end``."""

    def __init__(self, cfg: ToolFormatConfig, output_max_chars: int, encode: Callable[[str], list[int]]):
        super().__init__(output_max_chars, encode)
        self.cfg = cfg
        self.stop_string = cfg.code_end

    def after_step(self, text: str, step) -> Action:
        ended = self._ended(step)
        if ended is not None:
            return ended
        body = text[: len(text) - len(self.cfg.code_end)]
        start = body.rfind(self.cfg.code_begin)
        if start < 0:
            return Finish("malformed_code")  # a code_end with no code_begin before it
        code = body[start + len(self.cfg.code_begin):]
        if not code.strip():
            return Finish("empty_code")
        return RunCode(code)

    def render_code(self, code: str) -> str:
        """A cell as the model writes it (training data renders code this way)."""
        return f"{self.cfg.code_begin}{code.rstrip(chr(10))}\n{self.cfg.code_end}"

    def render_output(self, output: str) -> str:
        body = truncate_output(output, self.output_max_chars)
        return f"{self.cfg.code_output_begin}{body}\n{self.cfg.code_output_end}" if body else \
            f"{self.cfg.code_output_begin}{self.cfg.code_output_end}"


    def render_solution(self, solution: str) -> str:
        """A tool-integrated solution (data's fences, kit/tir.py) as the model writes it in these
        tags: each cell (``kit.tir.tool_cells``) as ``render_code`` and its output as
        ``render_output`` (the kit's reply, truncated alike); the text around the cells stays as
        written (a python block without an output too: it never ran)."""
        parts, cursor = [], 0
        for cell in tool_cells(solution):
            parts += [solution[cursor:cell.start], self.render_code(cell.code), self.render_output(cell.output)]
            cursor = cell.end
        return "".join(parts) + solution[cursor:]

    def output_spans(self, rendered: str) -> list[tuple[int, int]]:
        """Where the kit's replies are in a rendered solution (or a kit trace): each
        ``code_output_begin`` just after a ``code_end``, up to and including the
        ``code_output_end`` that closes the output (``render_output``'s layout; an output that
        prints its own ``code_output_end`` line is read as ending there)."""
        cfg = self.cfg
        spans, cursor = [], 0
        while (found := rendered.find(cfg.code_end + cfg.code_output_begin, cursor)) >= 0:
            start = found + len(cfg.code_end)
            body = start + len(cfg.code_output_begin)
            if rendered.startswith(cfg.code_output_end, body):
                end = body + len(cfg.code_output_end)
            elif (close := rendered.find("\n" + cfg.code_output_end, body)) >= 0:
                end = close + 1 + len(cfg.code_output_end)
            else:  # no end: not a reply the kit wrote
                break
            spans.append((start, end))
            cursor = end
        return spans


def stop_strings(cfg: ToolFormatConfig) -> list[str]:
    """The stop strings a generation step ends on (kept in the output) under ``cfg``."""
    if cfg.kind == "fences":
        return [code_stop_string(cfg.code_trigger)]
    if cfg.kind == "tagged":
        return [cfg.code_end]
    return []


def stop_token_ids(cfg: ToolFormatConfig) -> list[int]:
    """The stop token ids of a step under ``cfg`` (Harmony's ``<|call|>`` and ``<|return|>``)."""
    if cfg.kind != "harmony":
        return []
    from kit.toolcalls.harmony import harmony_encoding

    return list(harmony_encoding().stop_tokens_for_assistant_actions())


def make_format(cfg: KitConfig, encode: Callable[[str], list[int]]) -> ToolFormat:
    """The format ``cfg.tool_format`` names; ``encode`` turns reply text into token ids for the
    text formats (the engine's tokenizer; Harmony renders its own tokens)."""
    kind = cfg.tool_format.kind
    if kind == "fences":
        return FencesFormat(cfg.tool_format, cfg.output_max_chars, encode)
    if kind == "tagged":
        return TaggedFormat(cfg.tool_format, cfg.output_max_chars, encode)
    from kit.toolcalls.harmony import HarmonyFormat

    return HarmonyFormat(cfg)


__all__ = ["Action", "Finish", "FencesFormat", "KeepWriting", "Reply", "RunCode", "TaggedFormat", "ToolFormat",
           "make_format", "stop_strings", "stop_token_ids"]
