"""A scripted stand-in for the vLLM engine, for unit tests of the SC-TIR loop logic only
(the real engine is tested in test_vllm_integration.py).

Tokens are characters. A script maps (candidate index, step number) to the text that step
generates; a step ending with the output fence asks for its code to run.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable

from kit.answers import FirstBoxedWatch
from kit.engine import GenerationStep
from kit.tir import OUTPUT_FENCE


class ScriptedEngine:
    def __init__(self, script: Callable[[int, int], str], delay_s: float | Callable[[int, int], float] = 0.0,
                 stop_string: str = OUTPUT_FENCE, entropy: Callable[[int], float] | None = None,
                 stop_at_first_answer: bool = False):
        """``entropy``: each token's entropy for a candidate (as logprobs would give), None: none
        recorded. ``stop_at_first_answer``: cut a step at its first complete boxed answer, as
        the real engine's stream watch does (finish reason "answer")."""
        self.script = script
        self.stop_string = stop_string
        self.entropy = entropy
        self.stop_at_first_answer = stop_at_first_answer
        self.delay_s = delay_s
        self.requests: list[str] = []
        self.cancelled: list[str] = []

    def encode(self, text: str) -> list[int]:
        return [ord(ch) for ch in text]

    def prompt_ids(self, problem: str) -> list[int]:
        return self.encode(f"Problem: {problem}\nSolution: ")

    def chat_ids(self, message: str) -> list[int]:
        return self.encode(f"User: {message}\nAssistant: ")

    async def generate(self, token_ids: list[int], max_tokens: int, request_id: str) -> GenerationStep:
        self.requests.append(request_id)
        candidate, step = (int(x) for x in request_id.rsplit("-", 2)[1:])
        delay = self.delay_s(candidate, step) if callable(self.delay_s) else self.delay_s
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            self.cancelled.append(request_id)
            raise
        text = self.script(candidate, step)
        # Like vLLM: stop at the first stop string (kept), or at the token limit.
        cut = text.find(self.stop_string)
        stopped = cut >= 0 and cut + len(self.stop_string) <= max_tokens
        if stopped:
            text = text[: cut + len(self.stop_string)]
        finish = "length" if not stopped and len(text) > max_tokens else "stop"
        text = text[:max_tokens]
        if self.stop_at_first_answer:
            watch = FirstBoxedWatch()
            cut = next((i + 1 for i, ch in enumerate(text) if watch.feed(ch)), None)
            if cut is not None:
                text, finish, stopped = text[:cut], "answer", False
        entropies = None if self.entropy is None else [self.entropy(candidate)] * len(text)
        return GenerationStep(self.encode(text), text, finish, self.stop_string if stopped else None, entropies)

    def shutdown(self) -> None:
        pass


def code_step(code: str, prose: str = "Let me compute.") -> str:
    return f"{prose}\n```python\n{code}\n```\n{OUTPUT_FENCE}"


class AnswerBook(ScriptedEngine):
    """For problems with ids ``p<i>`` whose answer is 2i: candidate 0 is always right, the
    others right on even problems. Sends the process SIGINT (Ctrl-C: a KeyboardInterrupt in the
    main thread, wherever the loop runs) when asked for ``kill_at``, and waits to be cancelled."""

    def __init__(self, kill_at: str | None = None):
        super().__init__(lambda c, s: "")
        self.kill_at = kill_at
        self.solved: set[str] = set()

    async def generate(self, token_ids, max_tokens, request_id) -> GenerationStep:
        problem_id, candidate, _ = request_id.rsplit("-", 2)
        if problem_id == self.kill_at:
            os.kill(os.getpid(), signal.SIGINT)
            await asyncio.sleep(3600)
        self.solved.add(problem_id)
        i = int(problem_id[1:])
        answer = 2 * i if candidate == "0" or i % 2 == 0 else 2 * i + 1
        text = f"The answer is \\boxed{{{answer}}}."
        return GenerationStep(self.encode(text), text, "stop", None)


class HarmonyScriptedEngine:
    """The scripted engine for the Harmony format: a script maps (problem id, candidate, step) to
    the token ids that step generates (rendered with openai_harmony); like vLLM, a step stops at
    its first Harmony stop token (kept) or at the token limit. Text is decoded with the Harmony
    encoding. ``delay_s`` and ``entropy`` take (problem id, candidate): a step's duration, and
    each token's entropy (as logprobs would give; None: none recorded)."""

    def __init__(self, cfg, script: Callable[[str, int, int], list[int]],
                 delay_s: Callable[[str, int], float] | None = None,
                 entropy: Callable[[str, int], float] | None = None):
        from kit.toolcalls.harmony import HarmonyFormat

        self.harmony = HarmonyFormat(cfg)
        self.script = script
        self.delay_s = delay_s
        self.entropy = entropy
        self.requests: list[tuple[str, list[int]]] = []

    def encode(self, text: str) -> list[int]:
        return self.harmony.encode(text)

    def prompt_ids(self, problem: str) -> list[int]:
        return self.harmony.prompt_ids(problem)

    def chat_ids(self, message: str) -> list[int]:
        return self.harmony.prompt_ids(message, template="{problem}", instructions="")

    async def generate(self, token_ids: list[int], max_tokens: int, request_id: str) -> GenerationStep:
        self.requests.append((request_id, list(token_ids)))
        problem_id, candidate, step = request_id.rsplit("-", 2)
        candidate, step = int(candidate), int(step)
        await asyncio.sleep(self.delay_s(problem_id, candidate) if self.delay_s else 0)
        ids = list(self.script(problem_id, candidate, step))
        stop = next((i for i, t in enumerate(ids) if t in self.harmony.stop_tokens), None)
        if stop is not None and stop < max_tokens:
            ids = ids[: stop + 1]
        finish = "length" if len(ids) > max_tokens else "stop"
        ids = ids[:max_tokens]
        entropies = None if self.entropy is None else [self.entropy(problem_id, candidate)] * len(ids)
        return GenerationStep(ids, self.harmony.decode(ids), finish, None, entropies)

    def shutdown(self) -> None:
        pass


# Harmony turns for scripts, rendered by openai_harmony.
def turn(*messages) -> list[int]:
    """One assistant turn as the model writes it: every message rendered by openai_harmony, the
    first without the ``<|start|>assistant`` header the prompt (or the tool reply) already ends with."""
    from kit.toolcalls.harmony import harmony_encoding

    ids: list[int] = []
    for i, message in enumerate(messages):
        rendered = list(harmony_encoding().render(message))
        ids += rendered[2:] if i == 0 else rendered
    return ids


def analysis(text: str):
    from openai_harmony import Message, Role

    return Message.from_role_and_content(Role.ASSISTANT, text).with_channel("analysis")


def call(code: str, tool: str = "python"):
    from openai_harmony import Message, Role

    return (Message.from_role_and_content(Role.ASSISTANT, code).with_channel("analysis")
            .with_recipient(tool).with_content_type("code"))


def final(text: str) -> list[int]:
    """A final-channel message ending the conversation: rendered ends on <|end|>; the model ends on <|return|>."""
    from openai_harmony import Message, Role

    from kit.toolcalls.harmony import harmony_encoding

    ids = list(harmony_encoding().render(Message.from_role_and_content(Role.ASSISTANT, text).with_channel("final")))
    return ids[:-1] + harmony_encoding().encode("<|return|>", allowed_special="all")


def final_turn(text: str) -> list[int]:
    return final(text)[2:]
