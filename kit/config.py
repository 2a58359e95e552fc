"""The kit's configuration: dataclasses documented field by field, loaded from YAML
(``kit/configs/*.yaml``) and overridden by command-line flags.

``KitConfig`` holds the engine and SC-TIR settings; its ``executor`` section
(``ExecutorConfig``, a nested ``executor:`` mapping in YAML, ``--executor.<field>`` flags)
goes whole to the code sandbox (``kit.sandbox.pool.ExecutorPool``).

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

from kit.answers import PROFILES, AnswerProfile, get_profile
from kit.tir import CODE_TRIGGERS, DEFAULT_PROMPT_TEMPLATE
from kit.voting import EarlyStopRule, parse_rules

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@dataclass
class ExecutorConfig:
    """The code sandbox's settings (``kit/sandbox/pool.py``), given to ``ExecutorPool`` whole."""

    cell_timeout_s: float = field(default=5.0, metadata={"help": "Wall-clock limit per code cell (never more than what is left of the problem's time: kit/solver.py)."})
    memory_mb: int = field(default=2048, metadata={"help": "Address-space cap of each process of a code session (RLIMIT_AS), MiB."})
    max_processes: int = field(default=16, metadata={"help": "Processes/threads a code session may have (RLIMIT_NPROC)."})
    max_concurrent_cells: int = field(default=0, metadata={"help": "Cells running at once (more wait for a slot); 0: the number of CPU cores."})
    capture_chars: int = field(default=16384, metadata={"help": "Characters of a cell's output kept (the rest is counted); what the model sees is cut further by output_max_chars."})

    def __post_init__(self) -> None:
        if self.cell_timeout_s <= 0:
            raise ValueError(f"executor.cell_timeout_s: must be positive, got {self.cell_timeout_s}")
        for name in ("memory_mb", "max_processes", "capture_chars"):
            if getattr(self, name) < 1:
                raise ValueError(f"executor.{name}: must be at least 1, got {getattr(self, name)}")
        if self.max_concurrent_cells < 0:
            raise ValueError(f"executor.max_concurrent_cells: must be >= 0 (0: one per CPU core), "
                             f"got {self.max_concurrent_cells}")

    def concurrent_cells(self) -> int:
        return self.max_concurrent_cells or os.cpu_count() or 1


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
    executor: ExecutorConfig = field(default_factory=ExecutorConfig, metadata={"help": "The code sandbox: an executor: mapping of ExecutorConfig fields (above)."})

    def __post_init__(self) -> None:
        if not isinstance(self.executor, ExecutorConfig):
            check_fields(ExecutorConfig, self.executor, "executor")
            self.executor = ExecutorConfig(**self.executor)
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

    def answer_profile(self) -> AnswerProfile:
        """The answer rule ``profile`` names: how boxed text becomes a vote, and the fallback."""
        return get_profile(self.profile)

    def stop_rules(self) -> list[EarlyStopRule]:
        return parse_rules(self.early_stop)


# The fields of KitConfig that are sections: a mapping in YAML, ``--<section>.<field>`` flags.
SECTIONS = {"executor": ExecutorConfig}


def check_fields(cls: type, values: object, where: str) -> None:
    """ValueError naming ``where`` unless ``values`` is a ``cls`` or a mapping of its fields
    (sections checked the same way)."""
    if isinstance(values, cls):
        return
    if not isinstance(values, dict):
        raise ValueError(f"{where}: expected a mapping of {cls.__name__} fields, got {values!r}")
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown {cls.__name__} field(s) {unknown}")
    for name in values.keys() & SECTIONS.keys():
        check_fields(SECTIONS[name], values[name], f"{where}: {name}")


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
    """Defaults, then the YAML file, then ``overrides`` (None values are ignored). A section
    (``executor``) is a mapping in both, merged field by field: overriding one of its fields
    keeps the file's others (an ``ExecutorConfig`` given whole replaces the file's)."""
    values: dict = {}
    if name_or_path:
        path = resolve_config_path(name_or_path)
        values = yaml.safe_load(path.read_text()) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping of config fields")
        check_fields(KitConfig, values, str(path))
    overrides = {k: v for k, v in overrides.items() if v is not None}
    check_fields(KitConfig, overrides, "config overrides")
    for name, value in overrides.items():
        if name in SECTIONS and isinstance(value, dict):
            value = {**values.get(name, {}), **{k: v for k, v in value.items() if v is not None}}
        values[name] = value
    return KitConfig(**values)


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One ``--field-name`` flag per config field, ``--section.field-name`` per field of a
    section (``--executor.cell-timeout-s``); unset flags leave the YAML value."""
    _add_flags(parser.add_argument_group("config overrides (see kit/config.py)"), KitConfig, "")
    for name, cls in SECTIONS.items():
        _add_flags(parser.add_argument_group(f"{name} config overrides (see {cls.__name__} in kit/config.py)"),
                   cls, f"{name}.")


def _add_flags(group, cls: type, prefix: str) -> None:
    for f in dataclasses.fields(cls):
        if f.name in SECTIONS:
            continue
        flag, dest = "--" + prefix + f.name.replace("_", "-"), prefix + f.name
        if f.type == "bool":
            group.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=f.metadata["help"])
        else:
            kind = {"int": int, "float": float}.get(f.type, str)
            group.add_argument(flag, dest=dest, type=kind, default=None, metavar=f.name.upper(), help=f.metadata["help"])


def config_overrides(args: argparse.Namespace) -> dict:
    """The flags of ``add_config_flags`` as ``load_config`` overrides (sections as mappings)."""
    given = vars(args)
    overrides = {f.name: given[f.name] for f in dataclasses.fields(KitConfig) if f.name not in SECTIONS}
    for name, cls in SECTIONS.items():
        overrides[name] = {f.name: given[f"{name}.{f.name}"] for f in dataclasses.fields(cls)}
    return overrides
