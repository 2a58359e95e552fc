"""What ``python -m eval select`` replays and how (``SelectOptions``: one flag per field), kept
apart from the analysis so that building the command line imports nothing heavy."""

from __future__ import annotations

from dataclasses import dataclass, field

from kit.config import TimePolicyConfig

DRAWS = 200  # subsets per (problem, k) beyond which they are sampled (eval.metrics.maj_at_k's default)
RESAMPLES = 2000  # bootstrap resamples of the problems
DEFAULT_CODE_BONUS = 1.0  # code-verified: a clean candidate counts twice (eval.selection.methods says why)

# AIMO-3's private run: 50 problems in 5 hours. The simulation's default limit is that share per problem.
KAGGLE_LIMIT_S = 5 * 3600.0
KAGGLE_PROBLEMS = 50
_POLICY = TimePolicyConfig(kind="clamp")


@dataclass
class SelectOptions:
    """What ``eval select`` replays; each field is a flag (``--time-limit-s`` for time_limit_s)."""

    methods: list[str] | None = field(default=None, metadata={"help": "Selection methods to replay (default: every one the samples support): majority, entropy, combined, shortest, code-verified, and NAME:best / NAME:sum for each score column NAME.", "type": str})
    k: list[int] | None = field(default=None, metadata={"help": "Values of k (default 1, 2, 4, ... N; N: the fewest samples a problem has).", "type": int})
    draws: int = field(default=DRAWS, metadata={"help": "Subsets of size k per problem beyond which they are sampled (fixed seed) rather than all taken."})
    resamples: int = field(default=RESAMPLES, metadata={"help": "Bootstrap resamples of the problems for the 95% intervals."})
    seed: int = field(default=0, metadata={"help": "Seed of the sampled subsets, the bootstrap and the simulated runs."})
    confidence_weight: float = field(default=1.0, metadata={"help": "combined: weight of the confidence term beside the vote share (vote.confidence_weight)."})
    code_bonus: float = field(default=DEFAULT_CODE_BONUS, metadata={"help": "code-verified: extra weight of a candidate whose every code cell ran without error (each counts 1)."})
    score_k: int | None = field(default=None, metadata={"help": "k of the competition tables in the report (default: the runs' N when below the pooled samples, else the largest k below them; selection.json has every k).", "type": int})
    vote: str = field(default="majority", metadata={"help": "The vote of the early-stop replay and the run simulation: majority, entropy, combined, or NAME:best / NAME:sum for a score column."})
    rules: list[str] = field(default_factory=list, metadata={"help": "Early-stop rule sets to replay beside the defaults, each comma-separated (\"4/4,5/7,last:4/5\").", "type": str})
    time_limit_s: float | None = field(default=None, metadata={"help": "Simulated run's time limit (default: Kaggle's 5 h scaled to the problems, 360 s each).", "type": float})
    num_samples: int | None = field(default=None, metadata={"help": "Simulated run's candidates per problem (default: the runs' num_samples, else the fewest samples a problem has).", "type": int})
    early_stop: str = field(default="decided", metadata={"help": "Simulated run's early-stop rules, comma-separated; \"\": none."})
    time_policy: list[str] = field(default_factory=lambda: ["bank", "clamp"], metadata={"help": "Time policies to simulate (bank, clamp), on the same draws.", "type": str})
    reserve_s: float = field(default=_POLICY.reserve_s, metadata={"help": "clamp: seconds kept back for each problem still to come (time_policy.reserve_s)."})
    min_s: float = field(default=_POLICY.min_s, metadata={"help": "clamp: the least a problem gets (time_policy.min_s)."})
    max_s: float = field(default=_POLICY.max_s, metadata={"help": "clamp: the most a problem gets (time_policy.max_s)."})
    startup_s: float = field(default=0.0, metadata={"help": "Simulated run: seconds spent before the first problem (the model's load)."})
    safety_margin_s: float = field(default=0.0, metadata={"help": "Simulated run: seconds of the limit kept unused (the kit's safety margin)."})
    sim_runs: int = field(default=200, metadata={"help": "Simulated competition runs (paired into two-run scores)."})
    workers: int | None = field(default=None, metadata={"help": "Processes of the selection replay (default: every usable CPU).", "type": int})

    def __post_init__(self) -> None:
        if self.draws < 1 or self.resamples < 1 or self.sim_runs < 2:
            raise ValueError("need draws >= 1, resamples >= 1 and sim_runs >= 2")
        if self.k is not None and any(k < 1 for k in self.k):
            raise ValueError(f"k: every value must be at least 1, got {self.k}")

    def policies(self) -> list[TimePolicyConfig]:
        return [TimePolicyConfig(kind=kind, reserve_s=self.reserve_s, min_s=self.min_s, max_s=self.max_s)
                for kind in self.time_policy]
