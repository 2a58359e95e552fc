"""``python -m train select``: from sampled datasets (``train sample`` directories) to training
sets, each filter a recipe switch, with a report of what every filter dropped.

    python -m train select --config train/recipes/smoke/select.yaml

Reads one or more sample directories (the shards of one sampling job, or samples of several
models of the same problems, e.g. a teacher's and the student's: they must share the prompt and
tool-call format, since the rows are trained as written) and writes into ``output_dir``:

    rft.jsonl       RFT SFT chats (prompt + completion) for ``train sft``: per problem up to
                    ``diversity.max_paths`` distinct well-formed correct paths (train.diversity)
    dpo.jsonl       DPO pairs (prompt, chosen, rejected; ``kind`` says which rule made it,
                    train.pairs) for ``train dpo``
    kto.jsonl       KTO rows (prompt, completion, label) for ``train kto``: the RFT paths
                    desirable, the distinct wrong paths undesirable
    rm_pairs.jsonl  reward-model pairs (correct against wrong, every problem that has both)
    kit.yaml        the kit config the samples were drawn with, for the training recipes'
                    ``kit: {config: OUTPUT_DIR/kit.yaml}`` (its tool format says where the tool outputs are)
    report.json, report.md, select.png   what each filter dropped, distinct paths per problem

The filters, in order: decontamination against every evaluation split (on unless the recipe
names none), usability (cancelled, kit-error and empty traces are never trained on), the
difficulty band (a problem's pass rate over its samples in ``pass_rate_band``), correctness (the
grader's verdict, recorded by ``train sample``), format (a final boxed answer and only tool calls
that parsed; train.quality), mixed language (a change of script; train.quality), an optional
reward-model score threshold, then diversity (equal normalised code is one path; up to k paths
kept greedily far apart). Prompts are rebuilt from the sample's kit config exactly as the kit
built them (``kit.tir.chat_messages``) and the traces are kept as the kit wrote them, so the
training recipes must name the same kit config: ``kit.yaml`` here.

Selection is quick and deterministic: a rerun rewrites the outputs whole (atomically).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from tqdm import tqdm
from trl import TrlParser

from eval.runs import json_lines, read_complete_lines, replace_file
from eval.selection.loading import read_run_config
from eval.splits import SPLITS
from kit.config import KitConfig, load_config
from kit.tir import chat_messages
from train import pairs as rows_of
from train.chats import load_messages, training_format
from train.common import log_to_stdout
from train.decontaminate import clean_problem_ids
from train.diversity import DiversityConfig, diversity_config, path_key, select_diverse
from train.pairs import PAIR_KINDS, Trace
from train.quality import check_band, in_band, is_mixed_language, is_well_formed, model_written_text, unusable_reason
from train.select_report import summary_line, write_report

log = logging.getLogger(__name__)

OUTPUTS = ("rft", "dpo", "kto", "rm")
OUTPUT_FILES = {"rft": "rft.jsonl", "dpo": "dpo.jsonl", "kto": "kto.jsonl", "rm": "rm_pairs.jsonl"}
# The kit settings that decide how a prompt and a trace are written: samples pooled into one
# training set must agree on them.
PROMPT_SETTINGS = ("prompt_template", "system_prompt", "tool_format", "output_max_chars")


@dataclass
class SelectArguments:
    samples: list[str] = field(metadata={"help": "Sample directories written by `python -m train sample` (several: shards of one job, or several models on the same problems)."})
    output_dir: str = field(metadata={"help": "Where the training sets and the report are written."})
    outputs: list[str] = field(default_factory=lambda: list(OUTPUTS), metadata={"help": f"Which training sets to write, of {list(OUTPUTS)}."})
    diversity: dict | str | None = field(default_factory=dict, metadata={"help": "The diversity filter's settings (train.diversity.DiversityConfig: enabled, max_paths, metric, ...), a mapping; on the command line as YAML or JSON."})
    pass_rate_band: list[float] = field(default_factory=lambda: [0.0, 1.0], metadata={"help": "Difficulty band [lo, hi]: keep problems whose pass rate over their samples lies in it (o1-replication: keep hard problems for distillation)."})
    require_correct: bool = field(default=True, metadata={"help": "RFT and desirable KTO rows only from traces the grader judged correct."})
    require_well_formed: bool = field(default=True, metadata={"help": "RFT rows and chosen traces only from well-formed traces (a final boxed answer, tool calls that parsed)."})
    reject_mixed_language: bool = field(default=True, metadata={"help": "A trace whose text changes script (train.quality) is not clean: no RFT row, and it loses a `language` pair."})
    mixed_language_min_letters: int = field(default=2, metadata={"help": "Letters outside a trace's dominant script that make it mixed-language."})
    min_reward_score: float | None = field(default=None, metadata={"help": "Keep as RFT rows and chosen traces only correct traces whose reward-model score (sampled with vote.method rm) is at least this; None: no threshold."})
    dpo_pairs: list[str] = field(default_factory=lambda: list(PAIR_KINDS), metadata={"help": f"Pair kinds written to dpo.jsonl, of {list(PAIR_KINDS)} (train.pairs)."})
    hard_pair_band: list[float] = field(default_factory=lambda: [0.0, 1.0], metadata={"help": "correct_wrong DPO pairs only from problems whose pass rate lies in [lo, hi]: hard pairs (360's math work: DPO helped on problems the model gets sometimes right). A pair needs a right and a wrong trace, so 0 and 1 are out anyway."})
    length_ratio: float = field(default=1.3, metadata={"help": "A length pair's rejected (longer) correct trace has at least this many times the chosen one's tokens (> 1)."})
    max_pairs_per_problem: int = field(default=4, metadata={"help": "At most this many pairs per problem and pair kind (DPO and reward-model pairs)."})
    reference_solutions: str | None = field(default=None, metadata={"help": "A data file whose rows (ids matching the sampled problems) hold reference solutions, added as well-formed correct traces rendered in the samples' tool format: a teacher's solutions, or the data's for models too weak to be right (smoke runs). They count in no pass rate."})
    decontaminate_against: list[str] = field(default_factory=lambda: list(SPLITS), metadata={"help": "Evaluation splits whose problems must not be trained on (13-gram overlap, train.decontaminate); [] turns it off."})
    seed: int = field(default=0, metadata={"help": "Seed of the row shuffle (KTO batches need both labels)."})

    def __post_init__(self) -> None:
        self.diversity = diversity_config(self.diversity)
        for name, chosen, allowed in (("outputs", self.outputs, OUTPUTS), ("dpo_pairs", self.dpo_pairs, PAIR_KINDS)):
            unknown = sorted(set(chosen) - set(allowed))
            if unknown:
                raise ValueError(f"{name}: unknown {unknown}; choose from {list(allowed)}")
        self.band = check_band(self.pass_rate_band, "pass_rate_band")
        self.hard_band = check_band(self.hard_pair_band, "hard_pair_band")
        if self.length_ratio <= 1:
            raise ValueError(f"length_ratio: must be > 1 (a length pair's rejected trace is the longer), got {self.length_ratio}")
        if self.max_pairs_per_problem < 1:
            raise ValueError(f"max_pairs_per_problem: must be >= 1, got {self.max_pairs_per_problem}")


@dataclass
class Problem:
    """One problem's samples, pooled over the sample directories, and what selection made of them."""

    problem_id: str
    problem: str
    gold: str
    records: list[tuple[str, dict]] = field(default_factory=list)  # (sample directory, candidate record)
    traces: list[Trace] = field(default_factory=list)  # the usable ones, judged
    references: list[Trace] = field(default_factory=list)
    pass_rate: float = 0.0
    distinct_paths: int = 0  # distinct correct clean paths
    kept: list[Trace] = field(default_factory=list)  # the diverse RFT paths


# --- reading the sample directories

def read_samples(directories: list[str]) -> tuple[KitConfig, dict[str, Problem]]:
    """The kit config the samples were drawn with and their problems, pooled by problem id."""
    resolved = [Path(d).resolve() for d in directories]
    if len(set(resolved)) != len(resolved):
        raise ValueError(f"samples: a directory is given twice: {directories}")
    problems: dict[str, Problem] = {}
    first: tuple[str, dict] | None = None
    cfg = None
    for directory in directories:
        run = Path(directory)
        config = read_run_config(run)
        settings = {k: config["kit_config"][k] for k in PROMPT_SETTINGS}
        if first is None:
            first, cfg = (directory, settings), load_config(None, **config["kit_config"])
        elif settings != first[1]:
            differing = [k for k in PROMPT_SETTINGS if settings[k] != first[1][k]]
            raise ValueError(f"cannot pool {first[0]} and {directory}: they wrote prompts and traces differently "
                             f"({differing}); select over each apart")
        done = set()
        for line_no, record in enumerate(read_complete_lines(run / "problems.jsonl"), 1):
            if "problem" not in record:
                raise ValueError(f"{run / 'problems.jsonl'}:{line_no}: no problem text (written before `train "
                                 "sample` recorded it); sample again")
            pid = str(record["problem_id"])
            problem = problems.setdefault(pid, Problem(pid, record["problem"], str(record["gold"])))
            if problem.gold != str(record["gold"]):
                raise ValueError(f"problem {pid!r}: gold {problem.gold!r} in one sample directory, "
                                 f"{record['gold']!r} in {run}")
            done.add((record["seed"], pid))
        for record in read_complete_lines(run / "samples.jsonl"):
            if (record["seed"], str(record["problem_id"])) in done:  # a half-sampled problem is not a sample
                problems[str(record["problem_id"])].records.append((directory, record))
    if cfg is None:
        raise ValueError("samples: give at least one sample directory")
    return cfg, problems


def clean_problems(problems: dict[str, Problem], splits: list[str]) -> tuple[dict[str, Problem], int]:
    """The problems that share no 13-gram with the evaluation splits, and how many were dropped."""
    kept = clean_problem_ids([(p.problem_id, p.problem) for p in problems.values()], splits)
    return {pid: p for pid, p in problems.items() if pid in kept}, len(problems) - len(kept)


def reference_traces(source: str, problems: dict[str, Problem], cfg: KitConfig) -> int:
    """Add the data's own solutions (rendered in the samples' tool format) as references, keyed
    by their text (they have no executed cells); how many problems got one."""
    rows = load_messages(source, tool_format=training_format(cfg), decontaminate=False)
    added = 0
    for row in rows:
        problem = problems.get(row["id"])
        if problem is not None:
            text = row["messages"][-1]["content"]
            problem.references.append(Trace("reference", text, None, True, path_key({"text": text, "cells": []})))
            added += 1
    return added


# --- judging the traces

def judge(problem: Problem, args: SelectArguments, output_spans, unusable: Counter) -> None:
    """The problem's usable traces, each judged (train.quality), and its pass rate."""
    diversity: DiversityConfig = args.diversity
    for directory, record in problem.records:
        why = unusable_reason(record)
        if why is not None:
            unusable[why] += 1
            continue
        mixed = is_mixed_language(model_written_text(record["text"], output_spans), args.mixed_language_min_letters)
        reward_ok = True
        if args.min_reward_score is not None:
            if record.get("reward_score") is None:
                raise ValueError(f"{directory}: min_reward_score is set but candidate {record['index']} of problem "
                                 f"{problem.problem_id!r} has no reward_score (sample with vote.method rm)")
            reward_ok = record["reward_score"] >= args.min_reward_score
        problem.traces.append(Trace(
            f"{directory}:{record['seed']}:{record['index']}", record["text"], record["generated_tokens"],
            bool(record["correct"]), path_key(record, diversity.rename_variables, diversity.normalize_constants),
            well_formed=is_well_formed(record) or not args.require_well_formed,
            mixed_language=mixed and args.reject_mixed_language, reward_ok=reward_ok))
    if problem.traces:
        problem.pass_rate = sum(t.correct for t in problem.traces) / len(problem.traces)


def count_filtered(problem: Problem, dropped: Counter) -> None:
    """What each trace filter took out of the problem's RFT candidates, the first that applies."""
    for t in problem.traces:
        reason = ("wrong" if not t.correct else "malformed" if not t.well_formed
                  else "mixed_language" if t.mixed_language else "low_reward" if not t.reward_ok else None)
        if reason is not None:
            dropped[reason] += 1


def distinct(traces: list[Trace]) -> list[Trace]:
    """One trace per path, the shortest first (a reference, without a token count, last)."""
    by_key: dict[str, Trace] = {}
    for trace in sorted(traces, key=lambda t: (t.tokens is None, t.tokens or 0, t.candidate)):
        by_key.setdefault(trace.path_key, trace)
    return list(by_key.values())


def keep_diverse(problem: Problem, args: SelectArguments, dropped: Counter) -> None:
    """The problem's RFT paths: its clean traces (correct ones unless ``require_correct`` is off)
    and references, one per path, up to ``diversity.max_paths`` greedily far apart; every one of
    them with the diversity filter off."""
    candidates = [t for t in problem.traces if t.clean and (t.correct or not args.require_correct)]
    candidates += problem.references
    paths = distinct(candidates)
    problem.distinct_paths = len(paths)
    if not args.diversity.enabled:
        problem.kept = candidates
        return
    chosen = select_diverse([t.path_key for t in paths], args.diversity.max_paths, args.diversity.metric)
    problem.kept = [paths[i] for i in chosen]
    dropped["duplicate_path"] += len(candidates) - len(paths)
    dropped["beyond_max_paths"] += len(paths) - len(problem.kept)


# --- the training rows

def problem_rows(problem: Problem, prompt: list[dict], args: SelectArguments) -> dict[str, list[dict]]:
    """The problem's rows for each training set (train.pairs)."""
    pid, k = problem.problem_id, args.max_pairs_per_problem
    wrong = distinct([t for t in problem.traces if not t.correct])
    correct = distinct([t for t in problem.traces if t.correct] + problem.references)
    clean = [t for t in problem.kept if t.correct]  # the diverse rank-2 paths
    chosen = clean or [t for t in correct if t.rank == 1]  # the best rank there is
    pairs = []
    if "correct_wrong" in args.dpo_pairs and in_band(problem.pass_rate, args.hard_band):
        pairs += [(c, r, "correct_wrong") for c, r in rows_of.correct_wrong_pairs(chosen, wrong, k)]
    if "length" in args.dpo_pairs:
        pairs += [(c, r, "length") for c, r in rows_of.length_pairs(clean, args.length_ratio, k)]
    if "language" in args.dpo_pairs:
        mixed = [t for t in correct if t.mixed_language]
        pairs += [(c, r, "language") for c, r in rows_of.language_pairs(clean, mixed, k)]
    return {
        "rft": [rows_of.sft_row(pid, prompt, t) for t in problem.kept],
        "kto": ([rows_of.kto_row(pid, prompt, t, True) for t in clean]
                + [rows_of.kto_row(pid, prompt, t, False) for t in wrong]),
        "dpo": [rows_of.pair_row(pid, prompt, c, r, kind) for c, r, kind in pairs],
        "rm": [rows_of.pair_row(pid, prompt, c, r, "correct_wrong")
               for c, r in rows_of.correct_wrong_pairs(correct, wrong, k)],
    }


def main(args: SelectArguments) -> dict:
    # --- read the samples, minus any problem that overlaps an evaluation split
    cfg, problems = read_samples(args.samples)
    output_spans = training_format(cfg).output_spans  # also refuses harmony samples, which cannot be trained on
    sampled = len(problems)
    problems, contaminated = clean_problems(problems, args.decontaminate_against)
    references = reference_traces(args.reference_solutions, problems, cfg) if args.reference_solutions else 0

    # --- judge every trace, keep the problems in the difficulty band, choose diverse paths
    dropped: Counter = Counter()
    rows: dict[str, list[dict]] = {name: [] for name in OUTPUTS}
    selected = []
    for problem in tqdm(problems.values(), desc="select", unit="problem"):
        judge(problem, args, output_spans, dropped)
        if not problem.traces and not problem.references:
            dropped["problems_without_usable_traces"] += 1
            continue
        if problem.traces and not in_band(problem.pass_rate, args.band):
            dropped["problems_outside_band"] += 1
            continue
        count_filtered(problem, dropped)
        keep_diverse(problem, args, dropped)
        prompt = chat_messages(problem.problem, cfg.prompt_template, cfg.system_prompt)
        for name, new_rows in problem_rows(problem, prompt, args).items():
            rows[name] += new_rows
        selected.append(problem)

    # --- write the training sets and the report
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    shuffle = random.Random(args.seed)
    for name in args.outputs:
        shuffle.shuffle(rows[name])  # KTO's KL baseline compares within a batch: mixed labels in each
        replace_file(out / OUTPUT_FILES[name], json_lines(rows[name]))
    report = {
        "samples": args.samples, "problems_sampled": sampled, "problems_decontaminated": contaminated,
        "problems_with_reference": references, "problems_selected": len(selected),
        "candidates": sum(len(p.records) for p in problems.values()), "dropped": dict(dropped),
        "rows": {name: len(rows[name]) for name in args.outputs},
        "pair_kinds": dict(Counter(r["kind"] for r in rows["dpo"])),
        "per_problem": [{"problem_id": p.problem_id, "samples": len(p.traces), "pass_rate": p.pass_rate,
                         "distinct_paths": p.distinct_paths, "kept_paths": len(p.kept),
                         "distinct_sampled_paths": len({t.path_key for t in p.traces})} for p in selected],
    }
    # The kit config the rows were written in: the training recipes' `kit: {config: OUT/kit.yaml}`
    # reads their tool format from it (which spans are tool outputs, which get no loss).
    replace_file(out / "kit.yaml", [yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False)])
    write_report(out, report)
    print(summary_line(report, out))
    return report


def make_parser(subparsers: argparse._SubParsersAction | None = None) -> TrlParser:
    """TRL's script convention: the step's own parser, or its subcommand of ``python -m train``."""
    if subparsers is not None:
        return subparsers.add_parser("select", help="build RFT/DPO/KTO/reward-model sets from samples",
                                     dataclass_types=(SelectArguments,))
    return TrlParser((SelectArguments,), prog="python -m train select")


if __name__ == "__main__":
    log_to_stdout()
    main(*make_parser().parse_args_and_config())
