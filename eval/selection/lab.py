"""``python -m eval select``'s analysis: every selection method at every k, the competition
score, the early-stop rules and the run simulation, over loaded samples; one JSON-ready dict
(``selection.json``), which :mod:`eval.selection.report` turns into ``selection.md``."""

from __future__ import annotations

import dataclasses

from eval.metrics import k_values
from eval.selection import simulate
from eval.selection.accuracy import curve_table, replay
from eval.selection.competition import competition_table
from eval.selection.loading import REWARD_SCORE, LoadedSamples
from eval.selection.methods import CastVoteMethod, available_methods, build_methods, choose_methods, score_names
from eval.selection.options import KAGGLE_LIMIT_S, KAGGLE_PROBLEMS, SelectOptions
from eval.selection.samples import ProblemSamples


def simulation_vote(problems: list[ProblemSamples], options: SelectOptions) -> CastVoteMethod:
    """The cast_vote method named by ``options.vote`` (a weighted method has no kit config),
    refused when some voting sample lacks its signal."""
    every = build_methods(score_names(problems), options.confidence_weight, options.code_bonus)
    methods = {m.name: m for m in every if isinstance(m, CastVoteMethod)}
    if options.vote not in methods:
        raise ValueError(f"--vote {options.vote!r}: one of {sorted(methods)} (the kit's votes)")
    _, skipped = available_methods(problems, [methods[options.vote]])
    if options.vote in skipped:
        raise ValueError(f"--vote {options.vote}: {skipped[options.vote]}")
    return methods[options.vote]


def default_num_samples(loaded: LoadedSamples) -> int:
    """The runs' configured N when they agree on one (pooled seeds hold several draws of N), else
    the fewest samples a problem has."""
    configured = {s.num_samples for s in loaded.sources if s.num_samples is not None}
    fewest = min(len(p.samples) for p in loaded.problems)
    return min(configured.pop(), fewest) if len(configured) == 1 else fewest


def default_score_k(ks: list[int], num_samples: int, fewest: int) -> int:
    """The competition tables' k: the runs' N when it was replayed and is below the pool, else the
    largest k below the fewest samples a problem has. At k = all the samples, both runs draw the
    same candidates and no run-to-run luck is left to see."""
    if num_samples in ks and num_samples < fewest:
        return num_samples
    below = [k for k in ks if k < fewest]
    return max(below) if below else max(ks)


def without_finish_times(problems: list[ProblemSamples]) -> int:
    return sum(s.finish_s is None for p in problems for s in p.samples)


def analyse(loaded: LoadedSamples, options: SelectOptions) -> dict:
    """Everything ``selection.json`` holds."""
    problems = loaded.problems
    if not problems:
        raise ValueError("no problems in the samples")
    sizes = [len(p.samples) for p in problems]
    ks = sorted(set(options.k)) if options.k else k_values(min(sizes))
    if max(ks) > min(sizes):
        raise ValueError(f"k={max(ks)}: the fewest samples a problem has is {min(sizes)}")
    score_k = options.score_k or default_score_k(ks, default_num_samples(loaded), min(sizes))
    if score_k not in ks:
        raise ValueError(f"--score-k {score_k} is not one of the replayed k {ks}")
    methods, skipped = choose_methods(problems, options.methods, options.confidence_weight, options.code_bonus)
    vote = simulation_vote(problems, options)
    result = replay(problems, methods, ks, options.draws, options.seed, options.workers)
    accuracy = curve_table(result, options.resamples, options.seed)
    competition = competition_table(result, problems, options.resamples, options.seed)
    missing = without_finish_times(problems)
    if missing:
        reason = f"{missing} samples have no finish time (samples.jsonl's finished_at_s, a table's finish_s)"
        early_stop, simulation = {"skipped": reason}, {"skipped": reason}
    else:
        score = vote.score or REWARD_SCORE
        early_stop = {"rows": simulate.early_stop_table(problems, options.rules, vote.vote, score=score)}
        time_limit = options.time_limit_s or KAGGLE_LIMIT_S * len(problems) / KAGGLE_PROBLEMS
        simulation = simulate.simulate_competition(
            problems, time_limit_s=time_limit, num_samples=options.num_samples or default_num_samples(loaded),
            early_stop=options.early_stop, vote=vote.vote, time_policy=options.policies(), runs=options.sim_runs,
            seed=options.seed, safety_margin_s=options.safety_margin_s, startup_s=options.startup_s, score=score)
    return {
        "sources": [dataclasses.asdict(s) for s in loaded.sources],
        "pooled": loaded.pooled(),
        "problems": len(problems),
        "splits": {split: sum(p.split == split for p in problems) for split in sorted({p.split for p in problems})},
        "samples_per_problem": {"min": min(sizes), "max": max(sizes)},
        "ks": ks,
        "score_k": score_k,
        "methods": {m.name: m.description for m in methods},
        "skipped_methods": skipped,
        "accuracy": accuracy,
        "competition": competition,
        "per_problem": [{"problem_id": p.problem_id, "split": p.split, "samples": len(p.samples),
                         "correct": sum(s.correct for s in p.samples),
                         "accuracy": {name: dict(zip(ks, values[:, i].tolist()))
                                      for name, values in result.accuracy.items()}}
                        for i, p in enumerate(problems)],
        "vote": options.vote,
        "early_stop": early_stop,
        "simulation": simulation,
        "options": dataclasses.asdict(options),
    }
