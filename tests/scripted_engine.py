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

from kit.engine import GenerationStep
from kit.tir import OUTPUT_FENCE


class ScriptedEngine:
    def __init__(self, script: Callable[[int, int], str], delay_s: float | Callable[[int, int], float] = 0.0,
                 stop_string: str = OUTPUT_FENCE):
        self.script = script
        self.stop_string = stop_string
        self.delay_s = delay_s
        self.requests: list[str] = []
        self.cancelled: list[str] = []

    def encode(self, text: str) -> list[int]:
        return [ord(ch) for ch in text]

    def prompt_ids(self, problem: str) -> list[int]:
        return self.encode(f"Problem: {problem}\nSolution: ")

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
        return GenerationStep(self.encode(text), text, finish, self.stop_string if stopped else None)

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
