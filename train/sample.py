"""``python -m train sample``: the kit over a problem set, every candidate kept and graded, written
as a sample directory, the first step of the self-improvement loop (``train select`` reads it).

    python -m train sample --config train/recipes/smoke/sample.yaml

What it writes (``output_dir``; the layout of an ``eval run`` directory, eval/runner.py):
``config.yaml`` (the run's identity: problems source, problem ids, seed, model folder, the whole
kit config), ``samples.jsonl`` (one line per candidate: the whole trace in the kit config's tool
format, tool outputs included, answer, grade, tokens, entropies, code cells with their outputs,
errors and durations, when it finished), ``problems.jsonl`` (one line per problem: its text,
gold answer, the vote and its grade), ``summary.json`` and ``report.md``. Any model folder
(``kit: {model: ...}``), kit config and tool-call format: the kit samples, so the traces are
exactly what the kit shows the model. Early stopping is always off: every candidate runs to its
end, right and wrong alike. Problems overlapping an evaluation split are dropped first (13-gram
overlap, ``decontaminate_against``; on by default).

Resuming: problems are appended to the files as they finish (synced), so a killed run resumes
when the same command runs again: finished problems are kept, a half-finished one is solved
again. The directory remembers its configuration: the same ``output_dir`` with another kit
config, problem list or model is refused, naming what differs (``--overwrite true`` starts
over). So a run is not grown in place: sample the further problems into another ``output_dir`` and give
``train select`` both directories.

Scaling out. One node: the kit's ``data_parallel_size`` (vLLM's data-parallel replicas, one per
GPU, requests spread over them) with many problems in flight (``--problems_in_flight``, e.g.
4-8 per replica), as kit/configs/sampling-8gpu.yaml does. Several nodes: independent jobs, each
sampling one shard of the problems (``--shard K/N``: problems K, K+N, K+2N, ... of the
decontaminated list) into its own ``output_dir``; ``train select`` reads all the directories.
No scheduler of ours: a Slurm array, for example::

    #SBATCH --array=0-7 --gres=gpu:8
    python -m train sample --config train/recipes/rft/sample.yaml \\
        --shard $SLURM_ARRAY_TASK_ID/8 --output_dir runs/train/rft/samples/shard-$SLURM_ARRAY_TASK_ID

A killed or preempted array task resumes when requeued with the same command. (vLLM's own
multi-node data parallelism, backed by Ray, is an alternative the kit does not configure: its
engine runs on one node.)
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from trl import TrlParser

from eval.runner import run_split
from eval.splits import SPLITS, EvalProblem, load_split
from kit.config import KitConfig
from train.common import KIT_HELP, kit_config, kit_mapping, log_to_stdout
from train.decontaminate import clean_problem_ids


SHARD = re.compile(r"(\d+)/(\d+)")


@dataclass
class SampleArguments:
    problems: str = field(metadata={"help": "Problems with answers: a .jsonl/.csv/.parquet file, a split name or a hub dataset id."})
    output_dir: str = field(metadata={"help": "The sample directory to write (or to resume: rerun the same command)."})
    kit: dict | str | None = field(default_factory=dict, metadata={"help": KIT_HELP + " Set `model` to the model folder to sample and `num_samples` to the candidates per problem; early_stop is always off."})
    limit: int | None = field(default=None, metadata={"help": "Only the first K problems (before decontamination and sharding)."})
    problems_in_flight: int = field(default=1, metadata={"help": "Problems sampled at once: raise it to keep a large batch or several data-parallel replicas (the kit's data_parallel_size) busy. A kill loses at most 4x this many problems."})
    shard: str | None = field(default=None, metadata={"help": "K/N: sample only problems K, K+N, K+2N, ... of the decontaminated list (0 <= K < N), for N independent jobs each with its own output_dir."})
    decontaminate_against: list[str] = field(default_factory=lambda: list(SPLITS),
                                             metadata={"help": "Evaluation splits whose problems must not be trained on (13-gram overlap)."})
    overwrite: bool = field(default=False, metadata={"help": "Delete what output_dir holds and start over; by default a rerun resumes, and a different configuration is refused."})

    def __post_init__(self) -> None:
        self.kit = kit_mapping(self.kit)
        self.sampling_config()  # a bad kit setting fails now, while the recipe is parsed
        if self.problems_in_flight < 1:
            raise ValueError(f"problems_in_flight: expected at least 1, got {self.problems_in_flight}")
        self.shard_index()  # a bad shard fails now too

    def sampling_config(self) -> KitConfig:
        # No early stop: training data wants every sample, right and wrong.
        return kit_config(self.kit, early_stop=[])

    def shard_index(self) -> tuple[int, int]:
        """(K, N) of ``shard``; (0, 1) without one."""
        if self.shard is None:
            return 0, 1
        match = SHARD.fullmatch(self.shard.strip())
        if not match or int(match[1]) >= int(match[2]):
            raise ValueError(f"shard: expected K/N with 0 <= K < N (e.g. 0/8 for the first of 8 jobs), "
                             f"got {self.shard!r}")
        return int(match[1]), int(match[2])


def clean_problems(source: str, limit: int | None, against: list[str]) -> list[EvalProblem]:
    """The problems of ``source`` (its first ``limit``), minus those overlapping the evaluation
    splits ``against``."""
    problems, _ = load_split(source, limit)
    kept = clean_problem_ids([(p.id, p.problem) for p in problems], against)
    return [p for p in problems if p.id in kept]


def sample_problems(args: SampleArguments) -> list[EvalProblem]:
    """The problems this job samples: decontaminated, then its shard."""
    problems = clean_problems(args.problems, args.limit, args.decontaminate_against)
    k, n = args.shard_index()
    mine = problems[k::n]
    if not mine:
        raise ValueError(f"{args.problems}: no problems to sample ({len(problems)} after decontamination, "
                         f"shard {args.shard or '0/1'} holds none)")
    return mine


def sample(args: SampleArguments, make_solver: Callable[[KitConfig], object], model_path: str) -> dict:
    """Sample and grade ``args``'s problems with solvers from ``make_solver`` into
    ``args.output_dir``, resuming what it holds; the run's summary (eval.metrics.summarize)."""
    cfg = args.sampling_config()
    return run_split(args.problems, sample_problems(args), cfg, [cfg.seed], Path(args.output_dir), model_path,
                     make_solver, resume=True, force=args.overwrite, in_flight=args.problems_in_flight,
                     progress_label="sample")


def main(args: SampleArguments) -> None:
    from kit.embedded_model import resolve_model_path
    from kit.solver import Solver

    summary = sample(args, Solver, str(resolve_model_path(args.sampling_config().model)))
    candidates = summary["candidates"]
    rate = summary["correct_candidates"] / candidates if candidates else 0.0
    print(f"sampled {summary['problems']} problems into {args.output_dir}: {candidates} candidates, "
          f"{rate:.1%} correct, {summary['problems_with_a_correct_candidate']} problems with a correct candidate")


def make_parser(subparsers: argparse._SubParsersAction | None = None) -> TrlParser:
    """TRL's script convention: the step's own parser, or its subcommand of ``python -m train``."""
    if subparsers is not None:
        return subparsers.add_parser("sample", help="sample and grade the kit's candidates over a problem set",
                                     dataclass_types=(SampleArguments,))
    return TrlParser((SampleArguments,), prog="python -m train sample")


if __name__ == "__main__":
    log_to_stdout()
    main(*make_parser().parse_args_and_config())
