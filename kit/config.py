"""The kit's configuration: dataclasses documented field by field, loaded from YAML
(``kit/configs/*.yaml``) and overridden by command-line flags.

``KitConfig`` holds the engine and SC-TIR settings. Its sections (a nested mapping in YAML,
``--<section>.<field>`` flags) each go whole to the part they configure:

- ``executor`` (``ExecutorConfig``): the code sandbox, ``kit.sandbox.pool.ExecutorPool``;
- ``tool_format`` (``ToolFormatConfig``): how the model calls its python tool and sees the
  output (``kit.toolcalls``), for inference and for training data alike;
- ``vote`` (``VoteConfig``): how the finished candidates' answers become one (``kit.voting``);
- ``speculative`` (``SpeculativeConfig``): vLLM's speculative decoding (``kit.engine``);
- ``time_policy`` (``TimePolicyConfig``): per-problem time in a competition run
  (``kit.kaggle.time_bank``);
- ``reward_model`` (``RewardModelConfig``) and ``genselect`` (``GenSelectConfig``): selection
  that needs a model (``kit.reward``, ``kit.genselect``).

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
from kit.voting import VOTE_METHODS, EarlyStopRule, parse_rules

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


TOOL_FORMATS = ("fences", "tagged", "harmony")
REASONING_EFFORTS = ("low", "medium", "high")


@dataclass
class ToolFormatConfig:
    """How the model calls its python tool (``kit/toolcalls/``), given to the format whole.
    The tagged defaults are OpenMath-Nemotron's (AIMO-2's winner; NeMo-Skills' four code tags)."""

    kind: str = field(default="fences", metadata={"help": f"One of {list(TOOL_FORMATS)}: fences (Numina/ToRA/Qwen2.5-Math ```python / ```output blocks), tagged (four configurable strings, NeMo-Skills' code tags), harmony (gpt-oss: python tool calls in OpenAI's Harmony format, via openai_harmony)."})
    code_trigger: str = field(default="output_fence", metadata={"help": "fences only. When code runs: output_fence (the model writes ```output after its code, as TIR-trained models do) or code_close (as soon as a ```python block closes; for instruct models never trained on tool outputs)."})
    code_begin: str = field(default="<tool_call>\n```python\n", metadata={"help": "tagged only: the text that opens a code cell."})
    code_end: str = field(default="```\n</tool_call>\n", metadata={"help": "tagged only: the text that closes a code cell (the stop string: the code between the last code_begin and it runs)."})
    code_output_begin: str = field(default="```output\n", metadata={"help": "tagged only: what the kit writes before a cell's output."})
    code_output_end: str = field(default="```\n", metadata={"help": "tagged only: what the kit writes after a cell's output."})
    reasoning_effort: str = field(default="high", metadata={"help": f"harmony only: the system message's reasoning effort, one of {list(REASONING_EFFORTS)}."})

    def __post_init__(self) -> None:
        if self.kind not in TOOL_FORMATS:
            raise ValueError(f"tool_format.kind: {self.kind!r} is not one of {list(TOOL_FORMATS)}")
        if self.code_trigger not in CODE_TRIGGERS:
            raise ValueError(f"tool_format.code_trigger: {self.code_trigger!r} is not one of {list(CODE_TRIGGERS)}")
        for name in ("code_begin", "code_end", "code_output_begin", "code_output_end"):
            if not getattr(self, name).strip():  # each one is searched for: the loop's stop, the loss mask's spans
                raise ValueError(f"tool_format.{name}: must not be empty")
        if self.reasoning_effort not in REASONING_EFFORTS:
            raise ValueError(f"tool_format.reasoning_effort: {self.reasoning_effort!r} is not one of {list(REASONING_EFFORTS)}")


@dataclass
class VoteConfig:
    """How finished candidates' answers become the submitted one (``kit.voting.cast_vote``)."""

    method: str = field(default="majority", metadata={"help": f"One of {list(VOTE_METHODS)}: majority (count), entropy (each answer weighs the sum over its candidates of 1 / mean token entropy: AIMO-3's 1st place), combined (vote share plus confidence_weight times the answer's mean confidence exp(-entropy of its last tail_tokens tokens): AIMO-3's 2nd place). entropy and combined need logprobs > 0; rm (an outcome reward model's scores, reward_model section) needs reward_model.path."})
    confidence_weight: float = field(default=1.0, metadata={"help": "combined only: weight of the confidence term beside the vote share (0: majority by share)."})
    tail_tokens: int = field(default=256, metadata={"help": "Tokens at a candidate's end over which its tail entropy is taken (recorded in traces; the combined vote's confidence)."})
    rm_aggregate: str = field(default="best", metadata={"help": "rm only. best: the answer of the highest-scored candidate wins (Qwen2.5-Math's RM@k); sum: each answer weighs the sum of sigmoid(score) of its candidates (a score-weighted vote)."})

    def __post_init__(self) -> None:
        if self.method not in VOTE_METHODS:
            raise ValueError(f"vote.method: {self.method!r} is not one of {list(VOTE_METHODS)}")
        if self.confidence_weight < 0:
            raise ValueError(f"vote.confidence_weight: must be >= 0, got {self.confidence_weight}")
        if self.tail_tokens < 1:
            raise ValueError(f"vote.tail_tokens: must be at least 1, got {self.tail_tokens}")
        if self.rm_aggregate not in ("best", "sum"):
            raise ValueError(f"vote.rm_aggregate: {self.rm_aggregate!r} is not best or sum")


@dataclass
class RewardModelConfig:
    """An outcome reward model that scores each finished candidate (``kit/reward.py``), for
    ``vote.method: rm``; served by vLLM's pooling runner beside the policy model."""

    path: str = field(default="", metadata={"help": "Folder of a sequence-classification reward model (one score per sequence); empty: none."})
    gpu_memory_utilization: float = field(default=0.1, metadata={"help": "Share of device memory the reward model's engine may take (on CPU as for the policy's: kit/engine.py)."})
    max_model_len: int = field(default=4096, metadata={"help": "Tokens of problem + trace the reward model reads (longer traces keep their end: the answer)."})

    def __post_init__(self) -> None:
        if not 0 < self.gpu_memory_utilization <= 1 or self.max_model_len < 16:
            raise ValueError("reward_model: need 0 < gpu_memory_utilization <= 1 and max_model_len >= 16")


GENSELECT_MODES = ("override", "tiebreak")


@dataclass
class GenSelectConfig:
    """Generative selection (NeMo-Skills' GenSelect, ``kit/genselect.py``): after the vote, the policy
    model reads the distinct answers' shortest solutions and names the best one."""

    enabled: bool = field(default=False, metadata={"help": "Run GenSelect after the candidates finish (when two or more distinct answers voted)."})
    mode: str = field(default="override", metadata={"help": f"One of {list(GENSELECT_MODES)}: override (its pick is the answer), tiebreak (it decides only between answers tied at the top of the vote)."})
    solution_chars: int = field(default=1500, metadata={"help": "Characters of each answer's shortest solution shown (head and tail kept)."})
    max_tokens: int = field(default=1024, metadata={"help": "Tokens the model may write to choose."})
    reserve_s: float = field(default=20.0, metadata={"help": "Started only if this long is left before the problem's deadline (it is cancelled at the deadline and the vote stands)."})

    def __post_init__(self) -> None:
        if self.mode not in GENSELECT_MODES:
            raise ValueError(f"genselect.mode: {self.mode!r} is not one of {list(GENSELECT_MODES)}")
        if self.solution_chars < 1 or self.max_tokens < 1 or self.reserve_s < 0:
            raise ValueError("genselect: need solution_chars >= 1, max_tokens >= 1, reserve_s >= 0")


SPECULATIVE_METHODS = ("", "ngram", "eagle3")


@dataclass
class SpeculativeConfig:
    """vLLM's speculative decoding, passed to the engine as its ``speculative_config``."""

    method: str = field(default="", metadata={"help": "Empty: off; ngram (prompt lookup: drafts copied from earlier text, no draft model); eagle3 (an EAGLE-3 draft head at model)."})
    model: str = field(default="", metadata={"help": "eagle3 only: the draft model's folder."})
    num_speculative_tokens: int = field(default=3, metadata={"help": "Tokens drafted per step."})
    prompt_lookup_min: int = field(default=2, metadata={"help": "ngram only: shortest n-gram matched."})
    prompt_lookup_max: int = field(default=4, metadata={"help": "ngram only: longest n-gram matched."})

    def __post_init__(self) -> None:
        if self.method not in SPECULATIVE_METHODS:
            raise ValueError(f"speculative.method: {self.method!r} is not one of {list(SPECULATIVE_METHODS)}")
        if self.method == "eagle3" and not self.model:
            raise ValueError("speculative.model: eagle3 needs the draft model's folder")
        if self.num_speculative_tokens < 1:
            raise ValueError(f"speculative.num_speculative_tokens: must be at least 1, got {self.num_speculative_tokens}")
        if not 1 <= self.prompt_lookup_min <= self.prompt_lookup_max:
            raise ValueError("speculative: need 1 <= prompt_lookup_min <= prompt_lookup_max")


TIME_POLICIES = ("bank", "clamp")


@dataclass
class TimePolicyConfig:
    """Per-problem time in a competition run (``kit.kaggle.time_bank``)."""

    kind: str = field(default="bank", metadata={"help": "bank: a fair share plus what earlier problems left unused; clamp: the AIMO-3 winners' clamp(time_left - reserve_s * (problems_left - 1), min_s, max_s)."})
    reserve_s: float = field(default=300.0, metadata={"help": "clamp only: seconds kept back for each problem still to come."})
    min_s: float = field(default=300.0, metadata={"help": "clamp only: the least a problem gets while the time left allows it to every problem still to come (else each gets its fair share of what is left)."})
    max_s: float = field(default=900.0, metadata={"help": "clamp only: the most a problem gets."})

    def __post_init__(self) -> None:
        if self.kind not in TIME_POLICIES:
            raise ValueError(f"time_policy.kind: {self.kind!r} is not one of {list(TIME_POLICIES)}")
        if self.reserve_s < 0:
            raise ValueError(f"time_policy.reserve_s: must be >= 0, got {self.reserve_s}")
        if not 0 <= self.min_s <= self.max_s:
            raise ValueError(f"time_policy: need 0 <= min_s <= max_s, got {self.min_s}, {self.max_s}")


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
    block_size: int = field(default=0, metadata={"help": "Tokens per KV-cache block; 0: vLLM's default (16 on CUDA, 128 on CPU). Only whole blocks are shared by prefix caching, so on CPU 32 lets candidates share short prompts (measured: hit rate 54% -> 83% on cpu-smol's prompts)."})
    kv_cache_dtype: str = field(default="auto", metadata={"help": "vLLM KV-cache dtype: auto (the model's), fp8 / fp8_e4m3 (half the memory per token on H100: AIMO-3's winners)."})
    async_scheduling: bool = field(default=False, metadata={"help": "true: ask for vLLM's asynchronous scheduling (the next step is scheduled while the GPU runs this one; GPU only, not with ngram drafts); false: leave it to vLLM, which in 0.32 turns it on wherever it is supported."})
    warm_page_cache: bool = field(default=False, metadata={"help": "Read the model's weight files once before the engine starts, so vLLM loads from the page cache (minutes saved on Kaggle's network disks): kit/page_cache.py."})
    speculative: SpeculativeConfig = field(default_factory=SpeculativeConfig, metadata={"help": "Speculative decoding: a speculative: mapping of SpeculativeConfig fields (above)."})
    ignore_eos: bool = field(default=False, metadata={"help": "Benchmarks only: generation never stops at EOS, so every step runs to max_new_tokens (fixed lengths)."})
    # --- SC-TIR ---------------------------------------------------------------------
    profile: str = field(default="aimo3", metadata={"help": f"Answer rule: one of {sorted(PROFILES)}."})
    num_samples: int = field(default=48, metadata={"help": "Candidates per problem (N)."})
    max_code_rounds: int = field(default=4, metadata={"help": "Code cells a candidate may run (M)."})
    temperature: float = field(default=0.8, metadata={"help": "Sampling temperature."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling threshold."})
    top_k: int = field(default=0, metadata={"help": "Sample among the k likeliest tokens; 0: all."})
    min_p: float = field(default=0.0, metadata={"help": "Drop tokens less likely than min_p times the likeliest (AIMO-3's winners: 0.02); 0: off."})
    max_new_tokens: int = field(default=2048, metadata={"help": "New tokens per generation step (between two code cells)."})
    max_candidate_tokens: int = field(default=0, metadata={"help": "Tokens a candidate may generate over all its steps (tool outputs not counted); 0: only the context (max_model_len) limits it."})
    stop_at_first_answer: bool = field(default=False, metadata={"help": "End a candidate at its first complete \\boxed{} (streamed and checked as it is written; AIMO-3's winners), not at EOS."})
    logprobs: int = field(default=0, metadata={"help": "Top-k logprobs requested per token, for each candidate's token entropy (the entropy and combined votes); 0: off (no entropy recorded)."})
    tool_format: ToolFormatConfig = field(default_factory=ToolFormatConfig, metadata={"help": "The tool-call format: a tool_format: mapping of ToolFormatConfig fields (above)."})
    prompt_template: str = field(default=DEFAULT_PROMPT_TEMPLATE, metadata={"help": "User message; {problem} is replaced by the problem text."})
    system_prompt: str = field(default="", metadata={"help": "System message; empty: none (the chat template's default)."})
    output_max_chars: int = field(default=200, metadata={"help": "Characters of a cell's output shown to the model (head and tail kept)."})
    answer_from_code_output: bool = field(default=False, metadata={"help": "A candidate that ends without \\boxed{} answers with the last number its last (error-free) code cell printed. Numina: off; useful for models that rarely box."})
    mode: str = field(default="async", metadata={"help": "async: each candidate runs its code while others generate; lockstep: all generate, then all execute (Numina's baseline)."})
    early_stop: list[str] = field(default_factory=lambda: ["decided"], metadata={"help": "Rules that end a problem early: 'decided', 'K/M' (K agree among the first M valid), 'last:K/M'. Empty: wait for all."})
    problem_time_s: float = field(default=600.0, metadata={"help": "Wall-clock limit per problem; at the deadline the vote is taken over what finished."})
    engine_restart_window_s: float = field(default=600.0, metadata={"help": "A dead engine is restarted (inside the problem's time), unless it died within this many seconds of its previous death: then every later problem answers the fallback."})
    vote: VoteConfig = field(default_factory=VoteConfig, metadata={"help": "Answer selection: a vote: mapping of VoteConfig fields (above)."})
    reward_model: RewardModelConfig = field(default_factory=RewardModelConfig, metadata={"help": "An outcome reward model for vote.method rm: a reward_model: mapping of RewardModelConfig fields (above)."})
    genselect: GenSelectConfig = field(default_factory=GenSelectConfig, metadata={"help": "Generative selection after the vote: a genselect: mapping of GenSelectConfig fields (above)."})
    time_policy: TimePolicyConfig = field(default_factory=TimePolicyConfig, metadata={"help": "Competition runs: a time_policy: mapping of TimePolicyConfig fields (above)."})
    # --- executor -------------------------------------------------------------------
    executor: ExecutorConfig = field(default_factory=ExecutorConfig, metadata={"help": "The code sandbox: an executor: mapping of ExecutorConfig fields (above)."})

    def __post_init__(self) -> None:
        for name, cls in SECTIONS.items():
            if not isinstance(getattr(self, name), cls):
                check_fields(cls, getattr(self, name), name)
                setattr(self, name, cls(**getattr(self, name)))
        if self.profile not in PROFILES:
            raise ValueError(f"profile: {self.profile!r} is not one of {sorted(PROFILES)}")
        if self.mode not in ("async", "lockstep"):
            raise ValueError(f"mode: {self.mode!r} is not 'async' or 'lockstep'")
        if self.vote.method == "rm" and not self.reward_model.path:
            raise ValueError("vote.method: rm weighs answers by a reward model's scores: set reward_model.path")
        if self.vote.method in ("entropy", "combined") and self.logprobs < 1:
            raise ValueError(f"vote.method: {self.vote.method} weighs answers by token entropy, which needs logprobs >= 1 "
                             f"(got {self.logprobs})")
        if self.top_k < 0 or not 0 <= self.min_p < 1:
            raise ValueError(f"top_k must be >= 0 and min_p in [0, 1), got {self.top_k}, {self.min_p}")
        if self.async_scheduling and self.speculative.method == "ngram":
            raise ValueError("async_scheduling: vLLM 0.32 schedules asynchronously with EAGLE drafts only, not with "
                             "speculative.method ngram; set one of them off")
        if self.max_candidate_tokens < 0 or self.logprobs < 0 or self.block_size < 0:
            raise ValueError("max_candidate_tokens, logprobs and block_size: must be >= 0")
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
SECTIONS = {"executor": ExecutorConfig, "tool_format": ToolFormatConfig, "vote": VoteConfig,
            "speculative": SpeculativeConfig, "time_policy": TimePolicyConfig, "reward_model": RewardModelConfig,
            "genselect": GenSelectConfig}


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
    section, underscores as hyphens (``--executor.cell-timeout-s``, ``--tool-format.kind``); unset flags
    leave the YAML value."""
    _add_flags(parser.add_argument_group("config overrides (see kit/config.py)"), KitConfig, "")
    for name, cls in SECTIONS.items():
        _add_flags(parser.add_argument_group(f"{name} config overrides (see {cls.__name__} in kit/config.py)"),
                   cls, f"{name}.")


def _add_flags(group, cls: type, prefix: str) -> None:
    for f in dataclasses.fields(cls):
        if f.name in SECTIONS:
            continue
        flag, dest = "--" + (prefix + f.name).replace("_", "-"), prefix + f.name
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
