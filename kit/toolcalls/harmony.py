"""gpt-oss's Harmony format, rendered and parsed by ``openai_harmony`` (installed with vLLM as
the ``oss-harmony`` distribution; its o200k vocabulary is compiled into it, so it loads offline
with no file: see ``harmony_encoding`` for the one environment variable that breaks that).

The prompt is a system message (reasoning effort, the built-in ``python`` tool), a developer
message (``KitConfig.system_prompt``: the instructions) and the user's problem, rendered for
completion: it ends with ``<|start|>assistant``. Each generation step is one assistant turn: it
ends on ``<|call|>`` (a tool call) or ``<|return|>`` (the answer), the stop tokens
``stop_tokens_for_assistant_actions()`` gives. The step's tokens are parsed with
``parse_messages_from_completion_tokens``:

- a last message addressed ``to=python`` runs its content as code; the tool's reply, rendered
  by ``openai_harmony`` (``<|start|>python to=assistant<|channel|>analysis<|message|>…<|end|>``)
  and followed by ``<|start|>assistant``, is appended to the model's own tokens. The model's
  tokens are never re-rendered: re-rendering a parsed message does not give back the tokens the
  model wrote, which would break prefix caching and change what the model saw;
- a turn ending on ``<|return|>`` answers from its ``final``-channel messages.

Malformed turns end the candidate with a reason and never raise: tokens Harmony cannot parse
(``malformed_harmony``), a turn that ends on no Harmony stop token (``unterminated``), a call to another tool (``unknown_tool``), a call
with empty code (``empty_code``), tokens after ``<|return|>`` (``text_after_return``).
Tool output is rendered as text: a ``<|end|>`` printed by the code is ordinary text, not a token.
"""

from __future__ import annotations

import functools
import logging
import os

from kit.config import KitConfig
from kit.tir import render_prompt, truncate_output
from kit.toolcalls import Action, Finish, Reply, RunCode

log = logging.getLogger(__name__)

TOOL_NAME = "python"


@functools.cache
def harmony_encoding():
    """gpt-oss's encoding. oss-harmony reads ``$TIKTOKEN_ENCODINGS_BASE/o200k_base.tiktoken``
    instead of its built-in vocabulary when that variable is set, and fails when the file is
    missing or not the exact one (many public gpt-oss notebooks set it); the kit then unsets it
    and loads the built-in copy rather than lose the run."""
    from openai_harmony import HarmonyEncodingName, HarmonyError, load_harmony_encoding

    try:
        return load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
    except HarmonyError:
        base = os.environ.pop("TIKTOKEN_ENCODINGS_BASE", None)
        if base is None:
            raise
        log.warning("TIKTOKEN_ENCODINGS_BASE=%r holds no valid o200k vocabulary: unset it, loading the one built "
                    "into openai_harmony", base)
        return load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)


class HarmonyFormat:
    def __init__(self, cfg: KitConfig):
        from openai_harmony import HarmonyError, Role

        self.cfg = cfg
        self.encoding = harmony_encoding()
        self._assistant = Role.ASSISTANT
        self._harmony_error = HarmonyError
        special = self.encoding.encode("<|call|><|return|><|start|>assistant", allowed_special="all")
        self.call_token, self.return_token = special[0], special[1]
        self.next_turn = special[2:]  # <|start|>assistant: the header of the model's next turn
        self.stop_tokens = (self.call_token, self.return_token)

    # --- rendering ------------------------------------------------------------------------
    def prompt_ids(self, problem: str, template: str | None = None, instructions: str | None = None) -> list[int]:
        """The conversation for ``problem`` rendered for completion; ``template`` and
        ``instructions`` (the developer message) default to the config's prompt_template and
        system_prompt."""
        from openai_harmony import (Conversation, DeveloperContent, Message, ReasoningEffort, Role,
                                    SystemContent)

        template = self.cfg.prompt_template if template is None else template
        instructions = self.cfg.system_prompt if instructions is None else instructions

        effort = {"low": ReasoningEffort.LOW, "medium": ReasoningEffort.MEDIUM,
                  "high": ReasoningEffort.HIGH}[self.cfg.tool_format.reasoning_effort]
        messages = [Message.from_role_and_content(
            Role.SYSTEM, SystemContent.new().with_reasoning_effort(effort).with_python_tool())]
        if instructions:
            messages.append(Message.from_role_and_content(
                Role.DEVELOPER, DeveloperContent.new().with_instructions(instructions)))
        messages.append(Message.from_role_and_content(Role.USER, render_prompt(problem, template)))
        return list(self.encoding.render_conversation_for_completion(Conversation.from_messages(messages),
                                                                     Role.ASSISTANT))

    def encode(self, text: str) -> list[int]:
        """Text as ordinary tokens (special-token spellings in it stay text)."""
        return self.encoding.encode(text, disallowed_special=())

    def decode(self, token_ids: list[int]) -> str:
        return self.encoding.decode(token_ids)

    def reply(self, output: str) -> Reply:
        from openai_harmony import Author, Message, Role

        body = truncate_output(output, self.cfg.output_max_chars) or "(no output)"
        message = (Message.from_author_and_content(Author.new(Role.TOOL, TOOL_NAME), body)
                   .with_recipient("assistant").with_channel("analysis"))
        ids = list(self.encoding.render(message)) + self.next_turn
        return Reply(self.decode(ids), ids)

    # --- parsing ----------------------------------------------------------------------------
    def after_step(self, text: str, step) -> Action:
        if step.finish_reason in ("length", "answer"):
            return Finish(step.finish_reason)
        ids = list(step.token_ids)
        if not ids or ids[-1] not in self.stop_tokens:
            return Finish("unterminated")  # the turn ended on another end-of-text token, or none
        if self.return_token in ids[:-1]:
            return Finish("text_after_return")
        try:
            messages = self.encoding.parse_messages_from_completion_tokens(ids, self._assistant)
        except self._harmony_error as exc:  # what the model wrote is not Harmony: its candidate ends, the loop goes on
            log.debug("unparsable Harmony turn: %s", exc)
            return Finish("malformed_harmony")
        if not messages:
            return Finish("malformed_harmony")
        last = messages[-1]
        if ids[-1] == self.return_token:
            final = [_text(m) for m in messages if m.channel == "final"]
            return Finish("eos", "\n".join(final) if final else _text(last))
        recipient = (last.recipient or "").removeprefix("functions.")
        if recipient != TOOL_NAME:
            return Finish("unknown_tool")
        code = _text(last)
        if not code.strip():
            return Finish("empty_code")
        return RunCode(code)


def _text(message) -> str:
    from openai_harmony import TextContent

    return "".join(part.text for part in message.content if isinstance(part, TextContent))
