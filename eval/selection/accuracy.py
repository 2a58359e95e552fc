"""Accuracy of a selection method with k samples: the expectation, over the subsets of k of a
problem's N samples, that the method's pick is right; with a bootstrap 95% interval over
problems, and pass@k (``eval.metrics.pass_at_k``) as the ceiling no selection can pass.

As ``eval.metrics.maj_at_k`` does, the expectation is exact (every subset) when a problem has at
most ``draws`` subsets of size k, else estimated over ``draws`` random subsets drawn with a fixed
seed (per problem and k, so a problem's estimate does not depend on the others). Every method sees
the same subsets, so two methods' curves differ by the methods, not by the draws. A subset's pick
is right when it is the answer of a correct sample; a subset in which no sample answered is wrong.
"""

from __future__ import annotations

import hashlib
import itertools
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from math import comb

import numpy as np
from tqdm import tqdm

from eval.metrics import pass_at_k
from eval.selection.methods import Method
from eval.selection.options import DRAWS, RESAMPLES
from eval.selection.samples import ProblemSamples

CHUNK = 10  # problems per task handed to a worker process
PARALLEL_FROM = 50  # fewer problems are replayed in this process (a worker's start costs more)


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0))


def subsets(n: int, k: int, draws: int, key: str) -> list[tuple[int, ...]]:
    """Every k-subset of range(n) when there are at most ``draws``, else ``draws`` random ones
    (each a uniform k-subset, drawn by a generator seeded from ``key`` alone: reproducible)."""
    if not 1 <= k <= n:
        raise ValueError(f"subsets of size {k} of {n} samples: need 1 <= k <= n")
    if comb(n, k) <= draws:
        return list(itertools.combinations(range(n), k))
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little"))
    chosen = np.sort(np.argsort(rng.random((draws, n)), axis=1)[:, :k], axis=1)
    return [tuple(row) for row in chosen.tolist()]


def replay_problem(problem: ProblemSamples, methods: list[Method], ks: list[int], draws: int = DRAWS,
                   seed: int = 0) -> dict[str, list[float]]:
    """Per method, the probability that its pick from k random samples is right, for each k.
    A subset whose voters all give one answer picks it under every method (any vote returns one
    of its voters' answers), which spares the votes of the many unanimous subsets."""
    samples = problem.samples
    answers = [s.answer for s in samples]
    right = {s.answer for s in samples if s.correct and s.answer is not None}
    ballots = {m.name: [None if s.answer is None else m.ballot(s) for s in samples] for m in methods}
    accuracy: dict[str, list[float]] = {m.name: [] for m in methods}
    for k in ks:
        chosen = subsets(len(samples), k, draws, f"{seed}:{problem.split}:{problem.problem_id}:{k}")
        wins = dict.fromkeys(accuracy, 0)
        for subset in chosen:
            voters = [i for i in subset if answers[i] is not None]
            distinct = {answers[i] for i in voters}
            if len(distinct) <= 1:
                if distinct & right:
                    for name in wins:
                        wins[name] += 1
                continue
            for method in methods:
                wins[method.name] += method.pick([ballots[method.name][i] for i in voters]) in right
        for name in accuracy:
            accuracy[name].append(wins[name] / len(chosen))
    return accuracy


@dataclass(frozen=True)
class Replay:
    """Per method, an array (len(ks), problems) of per-problem accuracies; pass@k likewise."""

    ks: list[int]
    accuracy: dict[str, np.ndarray]
    pass_at_k: np.ndarray


def replay_chunk(problems: list[ProblemSamples], methods: list[Method], ks: list[int], draws: int,
                 seed: int) -> list[dict[str, list[float]]]:
    return [replay_problem(p, methods, ks, draws, seed) for p in problems]


def replay_all(problems: list[ProblemSamples], methods: list[Method], ks: list[int], draws: int, seed: int,
               workers: int, progress: bool) -> list[dict[str, list[float]]]:
    """replay_problem over every problem, in order; over ``workers`` processes (spawned: this
    process may hold the grader's or polars' threads) when there are enough problems."""
    bar = tqdm(total=len(problems), desc="selection replay", unit="problem", disable=not progress)
    if workers <= 1 or len(problems) < PARALLEL_FROM:
        results = []
        for problem in problems:
            results.append(replay_problem(problem, methods, ks, draws, seed))
            bar.update()
        bar.close()
        return results
    chunks = [problems[i:i + CHUNK] for i in range(0, len(problems), CHUNK)]
    done: dict[int, list[dict[str, list[float]]]] = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(replay_chunk, chunk, methods, ks, draws, seed): i for i, chunk in enumerate(chunks)}
        for future in as_completed(futures):
            done[futures[future]] = future.result()
            bar.update(len(done[futures[future]]))
    bar.close()
    return [result for i in range(len(chunks)) for result in done[i]]


def replay(problems: list[ProblemSamples], methods: list[Method], ks: list[int], draws: int = DRAWS,
           seed: int = 0, workers: int | None = None, progress: bool = True) -> Replay:
    """Every method at every k over every problem (``workers`` processes, default every usable
    CPU; a progress bar over the problems)."""
    if not problems:
        raise ValueError("no problems to replay")
    too_few = [p.problem_id for p in problems if len(p.samples) < max(ks)]
    if too_few:
        raise ValueError(f"k={max(ks)} needs that many samples per problem; {len(too_few)} problems have fewer "
                         f"(e.g. {too_few[:3]})")
    results = replay_all(problems, methods, ks, draws, seed, usable_cpus() if workers is None else workers, progress)
    accuracy = {m.name: np.array([r[m.name] for r in results], dtype=float).T for m in methods}
    ceiling = np.array([[pass_at_k(len(p.samples), sum(s.correct for s in p.samples), k) for p in problems]
                        for k in ks], dtype=float)
    return Replay(ks, accuracy, ceiling)


def bootstrap_means(values: np.ndarray, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """The mean over problems (last axis) of ``resamples`` resamples of the problems with
    replacement: shape values.shape[:-1] + (resamples,). The resamples depend only on the number
    of problems and the seed, so every row is resampled alike (paired)."""
    problems = values.shape[-1]
    if problems == 0:
        raise ValueError("bootstrap over no problems")
    counts = np.random.default_rng(seed).multinomial(problems, np.full(problems, 1 / problems), size=resamples)
    return values @ counts.T / problems


def interval(values: np.ndarray, resamples: int = RESAMPLES, seed: int = 0, level: float = 0.95) -> np.ndarray:
    """The percentile bootstrap interval of the mean over problems (last axis): [..., (low, high)]."""
    tail = 100 * (1 - level) / 2
    means = bootstrap_means(values, resamples, seed)
    return np.moveaxis(np.percentile(means, [tail, 100 - tail], axis=-1), 0, -1)


def curve_table(result: Replay, resamples: int = RESAMPLES, seed: int = 0) -> dict[str, dict[int, dict]]:
    """Per method (and pass@k), per k: the mean accuracy over problems and its 95% interval."""
    rows = {**result.accuracy, "pass@k": result.pass_at_k}
    bounds = interval(np.stack(list(rows.values())), resamples, seed)  # (methods, ks, 2), one resampling for all
    return {name: {k: {"accuracy": float(values[i].mean()), "low": float(low), "high": float(high)}
                   for i, (k, (low, high)) in enumerate(zip(result.ks, bounds[m]))}
            for m, (name, values) in enumerate(rows.items())}
