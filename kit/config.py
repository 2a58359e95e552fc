"""The kit's configuration: one dataclass, documented field by field, loaded from YAML
(``kit/configs/*.yaml``) and overridden by command-line flags.

The defaults are Numina's AIMO-1 SC-TIR settings on a GPU (N=48 samples, M=4 code rounds,
temperature 0.8, 2048 new tokens per step); ``cpu-smol.yaml`` shrinks them for the
embedded model on a 2-core machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kit.answers import PROFILES
from kit.tir import CODE_TRIGGERS, DEFAULT_PROMPT_TEMPLATE
from kit.voting import parse_rules

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@dataclass
class KitConfig:
    # --- model and engine ---------------------------------------------------------
    model: str = field(default="", metadata={"help": "Model folder (Hugging Face format). Empty: the embedded SmolLM2-135M-Instruct, prepared by `python -m kit prepare-model`."})
    dtype: str = field(default="auto", metadata={"help": "Weights/activations dtype for vLLM: auto, bfloat16, float16 (T4 has no bf16)."})
    quantization: str = field(default="", metadata={"help": "vLLM quantization method (e.g. gptq); empty: read from the model folder."})
    tensor_parallel_size: int = field(default=1, metadata={"help": "GPUs per model replica; 0: every visible GPU (1 on CPU)."})
    gpu_memory_utilization: float = field(default=0.9, metadata={"help": "Share of device memory vLLM may take (on CPU a share of the NUMA node, capped at half the memory available at start: kit/engine.py)."})
    max_model_len: int = field(default=4096, metadata={"help": "Context length: prompt + all generated tokens + tool outputs of one candidate (capped at the model's own maximum, with a warning)."})
    max_num_seqs: int = field(default=256, metadata={"help": "Most sequences the engine batches at once."})
    enable_prefix_caching: bool = field(default=True, metadata={"help": "Share KV cache of the common prompt and earlier rounds across candidates."})
    enforce_eager: bool = field(default=False, metadata={"help": "Skip torch.compile/CUDA graphs: faster start, slower steps (true on CPU)."})
    seed: int = field(default=0, metadata={"help": "Engine-wide sampling seed (per-request seeds crash vLLM's CPU worker)."})
    data_parallel_size: int = field(default=1, metadata={"help": "Model replicas (vLLM's data-parallel mode; requests are spread over them): for sampling KTO or rejection-sampling data at scale."})
    load_format: str = field(default="auto", metadata={"help": "vLLM load format; 'dummy' gives random weights from config.json, to time the engine on a real architecture without its weights."})
    ignore_eos: bool = field(default=False, metadata={"help": "Benchmarks only: generation never stops at EOS, so every step runs to max_new_tokens (fixed lengths)."})
    # --- SC-TIR ---------------------------------------------------------------------
    profile: str = field(default="aimo3", metadata={"help": f"Answer rule: one of {sorted(PROFILES)}."})
    num_samples: int = field(default=48, metadata={"help": "Candidates per problem (N)."})
    max_code_rounds: int = field(default=4, metadata={"help": "Code cells a candidate may run (M)."})
    temperature: float = field(default=0.8, metadata={"help": "Sampling temperature."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling threshold."})
    max_new_tokens: int = field(default=2048, metadata={"help": "New tokens per generation step (between two code cells)."})
    code_trigger: str = field(default="output_fence", metadata={"help": "When code runs: output_fence (the model writes ```output after its code, as TIR-trained models do) or code_close (as soon as a ```python block closes; for instruct models never trained on tool outputs)."})
    prompt_template: str = field(default=DEFAULT_PROMPT_TEMPLATE, metadata={"help": "User message; {problem} is replaced by the problem text."})
    system_prompt: str = field(default="", metadata={"help": "System message; empty: none (the chat template's default)."})
    output_max_chars: int = field(default=200, metadata={"help": "Characters of a cell's output shown to the model (head and tail kept)."})
    answer_from_code_output: bool = field(default=False, metadata={"help": "A candidate that ends without \\boxed{} answers with the last number its last (error-free) code cell printed. Numina: off; useful for models that rarely box."})
    mode: str = field(default="async", metadata={"help": "async: each candidate runs its code while others generate; lockstep: all generate, then all execute (Numina's baseline)."})
    early_stop: list[str] = field(default_factory=lambda: ["decided"], metadata={"help": "Rules that end a problem early: 'decided', 'K/M' (K agree among the first M valid), 'last:K/M'. Empty: wait for all."})
    problem_time_s: float = field(default=600.0, metadata={"help": "Wall-clock limit per problem; at the deadline the vote is taken over what finished."})
    engine_restart_window_s: float = field(default=600.0, metadata={"help": "A dead engine is restarted (inside the problem's time), unless it died within this many seconds of its previous death: then every later problem answers the fallback."})
    # --- executor -------------------------------------------------------------------
    cell_timeout_s: float = field(default=5.0, metadata={"help": "Wall-clock limit per code cell."})
    cell_memory_mb: int = field(default=2048, metadata={"help": "Address-space cap of a code session (RLIMIT_AS)."})
    cell_max_processes: int = field(default=16, metadata={"help": "Processes/threads a code session may have (RLIMIT_NPROC)."})
    executor_concurrency: int = field(default=0, metadata={"help": "Cells running at once; 0: the number of CPU cores."})

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(f"profile: {self.profile!r} is not one of {sorted(PROFILES)}")
        if self.mode not in ("async", "lockstep"):
            raise ValueError(f"mode: {self.mode!r} is not 'async' or 'lockstep'")
        if self.code_trigger not in CODE_TRIGGERS:
            raise ValueError(f"code_trigger: {self.code_trigger!r} is not one of {list(CODE_TRIGGERS)}")
        if isinstance(self.early_stop, str):
            self.early_stop = [s for s in self.early_stop.split(",") if s.strip()]
        parse_rules(self.early_stop)  # fail now, naming the bad rule
        for name in ("num_samples", "max_new_tokens", "max_model_len", "output_max_chars", "data_parallel_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1, got {getattr(self, name)}")
        if self.tensor_parallel_size < 0:
            raise ValueError(f"tensor_parallel_size: must be >= 0 (0: all GPUs), got {self.tensor_parallel_size}")
        if self.max_code_rounds < 0:
            raise ValueError(f"max_code_rounds: must be >= 0, got {self.max_code_rounds}")
        if "{problem}" not in self.prompt_template:
            raise ValueError("prompt_template: must contain {problem}")

    def executor_workers(self) -> int:
        return self.executor_concurrency or os.cpu_count() or 1


def resolve_config_path(name_or_path: str) -> Path:
    """A config file by path, or by name in kit/configs (``cpu-smol`` or ``cpu-smol.yaml``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    for candidate in (CONFIG_DIR / name_or_path, CONFIG_DIR / f"{name_or_path}.yaml"):
        if candidate.is_file():
            return candidate
    known = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    raise FileNotFoundError(f"config {name_or_path!r} not found (a path, or one of {known})")


def load_config(name_or_path: str | None = None, **overrides) -> KitConfig:
    """Defaults, then the YAML file, then ``overrides`` (None values are ignored)."""
    values: dict = {}
    if name_or_path:
        path = resolve_config_path(name_or_path)
        values = yaml.safe_load(path.read_text()) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping of config fields")
        known = {f.name for f in dataclasses.fields(KitConfig)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{path}: unknown config field(s) {unknown}")
    values.update({k: v for k, v in overrides.items() if v is not None})
    return KitConfig(**values)


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One ``--field-name`` flag per config field; unset flags leave the YAML value."""
    group = parser.add_argument_group("config overrides (see kit/config.py)")
    for f in dataclasses.fields(KitConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type == "bool":
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=f.metadata["help"])
        else:
            kind = {"int": int, "float": float}.get(f.type, str)
            group.add_argument(flag, dest=f.name, type=kind, default=None, help=f.metadata["help"])


def config_overrides(args: argparse.Namespace) -> dict:
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(KitConfig)}
