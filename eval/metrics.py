"""Metrics over a run's records: voted accuracy, pass@k (the unbiased estimator of Chen et
al. 2021), maj@k, breakdowns by level and subject, and per-problem cost; and the replay of
early-stop rules on a run made without them.

An evaluation run solves every problem without early stop, so that all N samples of every
problem finish and pass@k and maj@k are computed over N samples each: unbiased. Computing them
over the samples an early stop let finish would not be: those are the fast ones, and a rule fires
precisely when they agree. The config's early stop is then replayed on the full samples
(:func:`replay_early_stop`), giving the answer the kit as configured would have submitted; the
replay is exact because a run is the same up to the moment a rule fires."""

from __future__ import annotations

import itertools
import random
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from math import comb

from kit.config import VoteConfig
from kit.sctir import Candidate, votes_in_finish_order
from kit.voting import EarlyStopRule, VoteResult, cast_vote, first_firing_rule


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n, of
    which c are correct, is correct: 1 - C(n-c, k) / C(n, k)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def maj_at_k(answers: list[str | None], correct: list[bool], k: int, draws: int = 200, seed: int = 0) -> float:
    """Expected accuracy of a majority vote over k of the n samples: exact over all subsets
    when there are at most ``draws`` of them, else estimated over ``draws`` random subsets
    (fixed seed, so it is reproducible). Samples without an answer do not vote; a subset where
    none voted is wrong. Ties go to the answer of the lowest sample index in the subset."""
    n = len(answers)
    if not 1 <= k <= n:
        raise ValueError(f"maj@k needs 1 <= k <= n (n={n}, k={k})")
    right_answers = {a for a, ok in zip(answers, correct) if ok and a is not None}
    rng = random.Random(seed)
    if comb(n, k) <= draws:
        subsets = itertools.combinations(range(n), k)
    else:
        subsets = (sorted(rng.sample(range(n), k)) for _ in range(draws))
    wins = total = 0
    for subset in subsets:
        votes = Counter(answers[i] for i in subset if answers[i] is not None)
        total += 1
        wins += bool(votes) and votes.most_common(1)[0][0] in right_answers
    return wins / total


@dataclass(frozen=True)
class EarlyStop:
    """Where an early-stop rule fired in a replay."""

    rule: str
    stopped_at_s: float  # since the problem started
    vote: VoteResult  # over the candidates that had ended by then


def replay_early_stop(candidates: list[Candidate], rules: list[EarlyStopRule], vote: VoteConfig) -> EarlyStop | None:
    """Where the rules would have stopped a problem that ran without them, or None when none
    fires. As ``kit.sctir.ProblemRun.solve`` does, the rules are checked each time candidates end
    on their own (answered or pruned; a cancelled one only ended at the deadline), against the
    valid answers in finish order (ties by candidate index) of every candidate ended by then, with
    the candidates ending later counted as still running. The vote where one fires is the run's
    (``vote``: majority, entropy or combined), as the kit would have cast it."""
    ended = sorted({c.finished_at_s for c in candidates if c.status in ("answered", "pruned")})
    for t in ended:
        votes = votes_in_finish_order(candidates, until_s=t)
        running = sum(c.finished_at_s > t for c in candidates)
        rule = first_firing_rule(rules, [v.answer for v in votes], running) if running else None
        if rule is not None:
            return EarlyStop(str(rule), t, cast_vote(votes, vote))
    return None


def k_values(n: int) -> list[int]:
    """1, 2, 4, ... up to n, and n itself."""
    ks = [1]
    while ks[-1] * 2 < n:
        ks.append(ks[-1] * 2)
    return ks + [n] if ks[-1] != n else ks


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def summarize(problems: list[dict], candidates: list[dict]) -> dict:
    """Everything report.md shows, from problem records and candidate records (see
    eval.runner for their fields). ``accuracy`` is the answer the kit as configured submits
    (early stop replayed), ``accuracy_full_vote`` the vote over all N samples, and the curves
    are over all N samples of each problem."""
    by_seed: dict[int, list[dict]] = defaultdict(list)
    for p in problems:
        by_seed[p["seed"]].append(p)
    seed_accuracy = {seed: mean([p["correct"] for p in ps]) for seed, ps in sorted(by_seed.items())}
    full_vote_accuracy = mean([mean([p["full_vote"]["correct"] for p in ps]) for ps in by_seed.values()])

    samples: dict[tuple[int, str], list[dict]] = defaultdict(list)
    for c in candidates:
        samples[(c["seed"], c["problem_id"])].append(c)
    n = min((len(v) for v in samples.values()), default=0)
    curves: dict[str, dict[int, float]] = {"pass@k": {}, "maj@k": {}}
    if n:
        for k in k_values(n):
            curves["pass@k"][k] = mean([pass_at_k(len(cs), sum(c["correct"] for c in cs), k) for cs in samples.values()])
            curves["maj@k"][k] = mean([maj_at_k([c["answer"] for c in cs], [c["correct"] for c in cs], k)
                                       for cs in samples.values()])

    def breakdown(key: str) -> dict[str, dict]:
        groups: dict[str, list[bool]] = defaultdict(list)
        for p in problems:
            if p.get(key) is not None:
                groups[str(p[key])].append(p["correct"])
        return {g: {"accuracy": mean(v), "problems": len(v)} for g, v in sorted(groups.items())}

    cells = [len(c["cells"]) for c in candidates]
    total_s = sum(p["elapsed_s"] for p in problems)
    cancelled = [c for c in candidates if c["status"] == "cancelled"]
    all_cells = [cell for c in candidates for cell in c["cells"]]
    return {
        "problems": len(problems),
        "seeds": list(seed_accuracy),
        "accuracy": mean(list(seed_accuracy.values())),
        "accuracy_by_seed": seed_accuracy,
        "accuracy_seed_std": statistics.stdev(seed_accuracy.values()) if len(seed_accuracy) > 1 else 0.0,
        "accuracy_full_vote": full_vote_accuracy,
        "samples_per_problem": n,
        "curves": curves,
        "by_level": breakdown("level"),
        "by_subject": breakdown("subject"),
        "fallback_rate": mean([p["used_fallback"] for p in problems]),
        "early_stop_rate": mean([p["stop_reason"].startswith("early_stop") for p in problems]),
        "early_stop_time_saved": 1 - sum(p["stopped_at_s"] for p in problems) / total_s if total_s else 0.0,
        "deadline_rate": mean([p["stop_reason"] == "deadline" for p in problems]),
        # Only the deadline cancels candidates in an evaluation run (it runs without early stop).
        "cancelled_candidates": len(cancelled),
        "problems_with_cancelled": len({(c["seed"], c["problem_id"]) for c in cancelled}),
        "time_per_problem_s": mean([p["elapsed_s"] for p in problems]),
        "tokens_per_problem": mean([p["generated_tokens"] for p in problems]),
        "code_cells_per_candidate": mean(cells),
        "code_cells_histogram": {str(k): v for k, v in sorted(Counter(cells).items())},
        "code_error_rate": mean([cell["error"] is not None for cell in all_cells]),
        "code_timeout_rate": mean([cell["timed_out"] for cell in all_cells]),
        "candidate_status": dict(Counter(c["status"] if c["status"] != "pruned" else f"pruned:{c['reason']}"
                                         for c in candidates)),
    }
