"""Early-stop rules and whole competition runs, replayed on saved samples: how many tokens and
how much time a rule saves and how often it changes the answer (:func:`early_stop_table`), and
the score a competition run would get under a time limit, an early-stop rule and a time policy
(:func:`simulate_competition`).

Both replay each candidate's recorded finish time (``Sample.finish_s``, since its problem
started) as if a problem's candidates ran in parallel, as in the kit, and refuse samples without
one. The rules are the kit's (``kit.voting.first_firing_rule``), checked each time candidates
end, against the valid answers in finish order (ties by candidate index, ``Sample.order``), with
those ending later counted as running: the table replays every problem through
``eval.metrics.replay_early_stop`` itself; the simulation, which replays ~10^5 draws, walks the
same order incrementally (``_replay_draw``, checked against ``replay_early_stop`` by the tests).
Votes are ``kit.voting.cast_vote``'s.

Finish times are replayed as recorded: a draw of fewer candidates than the run had does not run
faster, and samples pooled from several runs are replayed as if they had run together.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib
import numpy as np
from tqdm import tqdm

from eval.metrics import replay_early_stop
from eval.selection.samples import ProblemSamples, Sample
from kit.config import TimePolicyConfig, VoteConfig
from kit.kaggle.time_bank import make_time_budget
from kit.sctir import Candidate, votes_in_finish_order
from kit.voting import EarlyStopRule, Vote, cast_vote, first_firing_rule, has_entropy, parse_rules

matplotlib.use("Agg")  # files only: no display on our machines or Kaggle's
import matplotlib.pyplot as plt  # noqa: E402

log = logging.getLogger(__name__)

# The Sample.scores column that vote.method rm reads by default: the reward model's score (eval.selection.loading).
REWARD_SCORE = "reward"

# Each single rule at a small grid, and the AIMO-2 front-runners' combination.
DEFAULT_RULE_SETS = ("decided", "2/2", "3/3", "4/4", "5/5", "3/5", "5/7", "6/9", "last:3/3", "last:4/5",
                     "4/4,5/7,6/9,last:4/5")

PERCENTILES = (5, 25, 50, 75, 95)

# Bounds on the simulation's memo tables (cleared when full; they only save time).
_MEMO_LIMIT = 500_000
_NOT_CAST = object()  # a vote not in the memo yet (its answer may be None)


def require_finish_times(problems: Sequence[ProblemSamples]) -> None:
    """Raise, naming the problem, unless every sample has a finite finish time >= 0."""
    for p in problems:
        if not p.samples:
            raise ValueError(f"problem {p.problem_id}: no samples to replay")
        bad = [s.order for s in p.samples if s.finish_s is None or not math.isfinite(s.finish_s) or s.finish_s < 0]
        if bad:
            raise ValueError(f"problem {p.problem_id}: {len(bad)} of {len(p.samples)} samples (candidates "
                             f"{bad[:5]}) have no finish time >= 0; early-stop and run replays need each "
                             "sample's recorded finish_s (samples.jsonl's finished_at_s, or a finish_s column)")


def parse_rule_set(spec: str | Sequence[str]) -> list[EarlyStopRule]:
    """One rule set: a comma-separated string (``"4/4,5/7,last:4/5"``) or a list of rules, as
    ``KitConfig.early_stop`` takes it; empty: no early stop."""
    specs = spec.split(",") if isinstance(spec, str) else list(spec)
    return parse_rules([s for s in specs if s.strip()])


def as_vote(s: Sample, score: str = REWARD_SCORE) -> Vote:
    """A sample's vote, its ``scores[score]`` as the reward."""
    return Vote(s.order, s.answer, s.mean_entropy, s.tail_entropy, s.scores.get(score))


def as_candidate(s: Sample, score: str = REWARD_SCORE) -> Candidate:
    """A sample as the ended candidate it was (answered, or pruned: it gave no valid answer)."""
    return Candidate(index=s.order, generated_tokens=s.tokens, mean_entropy=s.mean_entropy,
                     tail_entropy=s.tail_entropy, status="answered" if s.answer is not None else "pruned",
                     answer=s.answer, finished_at_s=s.finish_s, reward_score=s.scores.get(score))


def right_answers(p: ProblemSamples) -> frozenset[str]:
    return frozenset(s.answer for s in p.samples if s.correct and s.answer is not None)


def tokens_generated_after(p: ProblemSamples, stop_s: float) -> float:
    """Tokens the candidates still running at ``stop_s`` would generate after it: a cancelled
    candidate is assumed to generate its tokens at a constant rate over its run."""
    return math.fsum(s.tokens * (1 - stop_s / s.finish_s) for s in p.samples if s.finish_s > stop_s)


@contextmanager
def _quiet_replay_logs(problems: Sequence[ProblemSamples], vote: VoteConfig, score: str) -> Iterator[None]:
    """The replays cast ~10^5 votes and walk ~10^5 time-bank steps, each of which would log (the
    time bank every problem, ``cast_vote`` every vote lacking its method's signal): those loggers
    are held at ERROR while they run, and the missing signal is logged here once."""
    if vote.method != "majority":
        lacking = [p.problem_id for p in problems
                   if any(s.answer is not None and not has_entropy(as_vote(s, score), vote.method) for s in p.samples)]
        if lacking:
            log.warning("vote.method %s: %d problems (%s ...) have candidates without its signal; cast_vote counts "
                        "their votes by majority", vote.method, len(lacking), ", ".join(lacking[:3]))
    loggers = [logging.getLogger(name) for name in ("kit.voting", "kit.kaggle.time_bank")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _rule_set_labels(rules: Sequence[str]) -> list[str]:
    labels: list[str] = []
    for spec in [*rules, *DEFAULT_RULE_SETS]:
        label = ",".join(str(r) for r in parse_rule_set(spec))
        if label and label not in labels:
            labels.append(label)
    return labels


def early_stop_table(problems: list[ProblemSamples], rules: list[str], vote: VoteConfig, *,
                     score: str = REWARD_SCORE) -> list[dict]:
    """One row per rule set (each of ``rules``, comma-separated, then ``DEFAULT_RULE_SETS``),
    replayed on every problem's samples in their recorded finish order. Per row: ``fired`` (share
    of problems where a rule fired, and ``fired_by_rule`` counts which), ``tokens_saved`` (tokens
    the candidates still running at the stop would have generated after it, over all tokens of
    all problems: a candidate's tokens are spread evenly over its run; None without token
    counts), ``time_saved`` (stop moment vs the last finish, summed over problems, over the
    summed last finishes) and ``time_saved_s`` (per problem), ``agreement`` (share of problems
    whose early answer is the full vote's, both by ``vote``), ``accuracy`` (of the early answer)
    beside ``full_vote_accuracy``. ``score``: the score column an ``rm`` vote reads."""
    require_finish_times(problems)
    labels = _rule_set_labels(rules)
    candidates = [[as_candidate(s, score) for s in p.samples] for p in problems]
    rights = [right_answers(p) for p in problems]
    total_tokens = sum(s.tokens for p in problems for s in p.samples)
    last_s = [max(s.finish_s for s in p.samples) for p in problems]
    rows = []
    with _quiet_replay_logs(problems, vote, score), tqdm(total=len(labels) * len(problems), desc="early-stop rules",
                                                  unit="problem", disable=None) as bar:
        full = [cast_vote(votes_in_finish_order(cs), vote).answer for cs in candidates]
        for label in labels:
            parsed = parse_rule_set(label)
            saved_tokens, saved_s, agree, right = [], [], 0, 0
            fired: Counter[str] = Counter()
            for p, cs, full_answer, good, last in zip(problems, candidates, full, rights, last_s):
                stop = replay_early_stop(cs, parsed, vote)
                answer = full_answer if stop is None else stop.vote.answer
                if stop is not None:
                    fired[stop.rule] += 1
                    saved_tokens.append(tokens_generated_after(p, stop.stopped_at_s))
                    saved_s.append(last - stop.stopped_at_s)
                agree += answer == full_answer
                right += answer in good
                bar.update()
            n = len(problems)
            rows.append({
                "rules": label,
                "problems": n,
                "fired": fired.total() / n,
                "fired_by_rule": dict(fired.most_common()),
                "tokens_saved": math.fsum(saved_tokens) / total_tokens if total_tokens else None,
                "time_saved": math.fsum(saved_s) / sum(last_s) if sum(last_s) else None,
                "time_saved_s": math.fsum(saved_s) / n,
                "agreement": agree / n,
                "accuracy": right / n,
                "full_vote_accuracy": sum(a in good for a, good in zip(full, rights)) / n,
            })
    return rows


@dataclass
class _Problem:
    """A problem's samples in finish order (ties by candidate index), as the simulation reads them."""

    finish_s: list[float]
    answers: list[str | None]
    votes: list[Vote | None]
    right: frozenset[str]

    @classmethod
    def of(cls, p: ProblemSamples, score: str = REWARD_SCORE) -> _Problem:
        ordered = sorted(p.samples, key=lambda s: (s.finish_s, s.order))
        return cls([s.finish_s for s in ordered], [s.answer for s in ordered],
                   [as_vote(s, score) if s.answer is not None else None for s in ordered], right_answers(p))

    def vote(self, positions: Sequence[int], cfg: VoteConfig) -> str | None:
        """The answer the candidates at ``positions`` vote (None: none of them answered)."""
        return cast_vote([v for v in (self.votes[i] for i in positions) if v is not None], cfg).answer


@dataclass(frozen=True)
class _Draw:
    """One problem's drawn candidates replayed without a time limit."""

    positions: tuple[int, ...]  # into _Problem's lists, ascending (so in finish order)
    finish_s: list[float]  # theirs, ascending
    needed_s: float  # when the problem ends: the stop moment if a rule fired, else the last finish
    early_stopped: bool


def _replay_draw(p: _Problem, positions: tuple[int, ...], rules: list[EarlyStopRule], memo: dict) -> _Draw:
    """``replay_early_stop`` on the drawn candidates, walking their finish order once. The rules
    see only how the answers so far group and how many are running, so their verdict is memoised
    on the answers relabelled in order of first appearance, and the count running."""
    finish = [p.finish_s[i] for i in positions]
    answers: list[str] = []  # the valid ones so far, in finish order
    labels: dict[str, int] = {}
    codes: tuple[int, ...] = ()
    last = len(positions) - 1
    for j, i in enumerate(positions):
        answer = p.answers[i]
        if answer is not None:
            answers.append(answer)
            codes += (labels.setdefault(answer, len(labels)),)
        if j < last and finish[j + 1] == finish[j]:
            continue  # the candidates tied with this one end at the same moment: check once they all have
        running = last - j
        if running and answers:
            key = (codes, running)
            fires = memo.get(key)
            if fires is None:
                if len(memo) > _MEMO_LIMIT:
                    memo.clear()
                fires = memo[key] = first_firing_rule(rules, answers, running) is not None
            if fires:
                return _Draw(positions, finish, finish[j], True)
    return _Draw(positions, finish, finish[-1], False)


def _stats(values: Sequence[float]) -> dict:
    arr = np.asarray(values, dtype=float)
    percentiles = np.percentile(arr, PERCENTILES)
    return {"mean": float(arr.mean()), "std": float(arr.std()), "min": float(arr.min()), "max": float(arr.max()),
            **{f"p{q}": float(v) for q, v in zip(PERCENTILES, percentiles)}}


def policy_label(policy: TimePolicyConfig) -> str:
    if policy.kind == "clamp":
        return f"clamp (reserve {policy.reserve_s:g} s, min {policy.min_s:g} s, max {policy.max_s:g} s)"
    return policy.kind


class _Clock:
    """The simulated run's clock, advanced by the time each problem takes."""

    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def simulate_competition(problems: list[ProblemSamples], *, time_limit_s: float, num_samples: int,
                         early_stop: str | Sequence[str], vote: VoteConfig,
                         time_policy: TimePolicyConfig | Sequence[TimePolicyConfig], runs: int = 200, seed: int = 0,
                         safety_margin_s: float = 0.0, per_call_cap_s: float | None = None,
                         startup_s: float = 0.0, score: str = REWARD_SCORE) -> dict:
    """``runs`` simulated competition runs: each takes the problems in a random order and draws
    ``num_samples`` of each problem's samples (without replacement), which run in parallel from
    the problem's start and end at their recorded finish times. A problem is given the
    policy's allowance (``kit.kaggle.time_bank.make_time_budget`` over ``time_limit_s``,
    ``safety_margin_s`` and ``per_call_cap_s``, on a clock that starts at ``startup_s``: the model
    load) and takes min(allowance, the moment a rule of ``early_stop`` fires, else the last
    finish); the candidates ended by then vote (``cast_vote`` with ``vote``), and a problem where
    none did, or given no time, is wrong. Every policy of ``time_policy`` sees the same orders
    and draws. Per policy: the correct count per run (``scores``, and ``score`` its mean, spread
    and percentiles), AIMO-3's two-run score (runs paired in turn, 1 for a problem right in both,
    0.5 for one: the mean of the pair's counts), the run's elapsed time and the time it left
    unused (``unused_s``) or overran the limit by (``overrun_s``), and per run the problems out
    of time (given no allowance), cut short by their allowance (some candidates still running,
    no rule fired by then), and stopped early by a rule. ``score``: the score column an ``rm``
    vote reads."""
    policies = [time_policy] if isinstance(time_policy, TimePolicyConfig) else list(time_policy)
    if not policies:
        raise ValueError("time_policy: give at least one policy")
    if runs < 2:
        raise ValueError(f"runs: need at least 2 (the two-run score pairs them), got {runs}")
    if num_samples < 1:
        raise ValueError(f"num_samples: must be at least 1, got {num_samples}")
    require_finish_times(problems)
    short = [p for p in problems if len(p.samples) < num_samples]
    if short:
        raise ValueError(f"num_samples {num_samples}: problem {short[0].problem_id} has {len(short[0].samples)} "
                         f"samples ({len(short)} problems have fewer than {num_samples})")
    rules = parse_rule_set(early_stop)
    prepared = [_Problem.of(p, score) for p in problems]
    sizes = np.array([len(p.finish_s) for p in prepared])
    rng = np.random.default_rng(seed)
    rule_memo: dict = {}
    vote_memo: dict = {}
    every = {i: _replay_draw(p, tuple(range(num_samples)), rules, rule_memo)
             for i, p in enumerate(prepared) if len(p.finish_s) == num_samples}  # the draw is all of them
    tallies = [{"scores": [], "elapsed_s": [], "out_of_time": [], "cut_by_allowance": [], "early_stopped": []}
               for _ in policies]

    def outcome(i: int, draw: _Draw, allowance: float) -> tuple[float, bool, bool]:
        """Time taken, right, and whether the allowance cut it short."""
        if allowance <= 0:  # Submission answers the fallback without solving
            return 0.0, False, False
        used = min(allowance, draw.needed_s)
        ended = draw.positions[:bisect.bisect_right(draw.finish_s, used)]
        key = (i, ended)
        answer = vote_memo.get(key, _NOT_CAST)
        if answer is _NOT_CAST:
            if len(vote_memo) > _MEMO_LIMIT:
                vote_memo.clear()
            answer = vote_memo[key] = prepared[i].vote(ended, vote)
        return used, answer in prepared[i].right, allowance < draw.needed_s

    with _quiet_replay_logs(problems, vote, score):
        for _ in tqdm(range(runs), desc="competition runs", unit="run", disable=None):
            order = rng.permutation(len(prepared))
            keys = rng.random((len(prepared), int(sizes.max())))
            keys[np.arange(keys.shape[1]) >= sizes[:, None]] = 2.0  # beyond a problem's samples: never drawn
            drawn = np.sort(np.argsort(keys, axis=1)[:, :num_samples], axis=1).tolist()
            draws = [every[i] if i in every else _replay_draw(p, tuple(drawn[i]), rules, rule_memo)
                     for i, p in enumerate(prepared)]
            for policy, tally in zip(policies, tallies):
                clock = _Clock()
                clock.now_s = startup_s
                budget = make_time_budget(policy, limit_s=time_limit_s, num_problems=len(prepared),
                                          safety_margin_s=safety_margin_s, per_call_cap_s=per_call_cap_s,
                                          started_at=0.0, clock=clock)
                right = out_of_time = cut = stopped = 0
                for i in order.tolist():
                    allowance = budget.allowance()
                    used, ok, was_cut = outcome(i, draws[i], allowance)
                    clock.now_s += used
                    budget.record(problems[i].problem_id, allowance, used, ok)
                    right += ok
                    out_of_time += allowance <= 0
                    cut += was_cut
                    stopped += allowance > 0 and draws[i].early_stopped and not was_cut
                for name, value in (("scores", right), ("elapsed_s", clock.now_s), ("out_of_time", out_of_time),
                                    ("cut_by_allowance", cut), ("early_stopped", stopped)):
                    tally[name].append(value)
    results = []
    for policy, tally in zip(policies, tallies):
        scores = tally["scores"]
        two_run = [(a + b) / 2 for a, b in zip(scores[0::2], scores[1::2])]
        elapsed = np.asarray(tally["elapsed_s"])
        results.append({
            "policy": policy_label(policy),
            "settings": asdict(policy),
            "score": _stats(scores),
            "scores": scores,
            "accuracy": float(np.mean(scores)) / len(problems),
            "two_run_score": _stats(two_run),
            "two_run_scores": two_run,
            "elapsed_s": _stats(elapsed),
            "unused_s": _stats(np.maximum(time_limit_s - elapsed, 0.0)),
            "overrun_s": _stats(np.maximum(elapsed - time_limit_s, 0.0)),
            "runs_over_limit": int((elapsed > time_limit_s).sum()),
            **{name: _stats(tally[name]) for name in ("out_of_time", "cut_by_allowance", "early_stopped")},
        })
    return {"problems": len(problems), "time_limit_s": time_limit_s, "num_samples": num_samples,
            "early_stop": ",".join(str(r) for r in rules), "vote": vote.method, "runs": runs, "seed": seed,
            "safety_margin_s": safety_margin_s, "per_call_cap_s": per_call_cap_s, "startup_s": startup_s,
            "policies": results}


def _save(fig, path: str | Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_early_stop(rows: list[dict], path: str | Path) -> None:
    """Tokens saved (time saved where tokens were not recorded) against agreement with the full
    vote, one point per rule set, coloured by accuracy."""
    by_tokens = all(r["tokens_saved"] is not None for r in rows)
    xs = [r["tokens_saved"] if by_tokens else r["time_saved"] or 0.0 for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    points = ax.scatter(xs, [r["agreement"] for r in rows], c=[r["accuracy"] for r in rows], cmap="viridis")
    for x, r in zip(xs, rows):
        ax.annotate(r["rules"], (x, r["agreement"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    fig.colorbar(points, ax=ax, label="accuracy of the early answer")
    ax.set_xlabel("share of tokens saved" if by_tokens else "share of wall time saved")
    ax.set_ylabel("agreement with the full vote")
    ax.set_title("early-stop rules: saved vs agreement")
    _save(fig, path)


def plot_simulation(result: dict, path: str | Path) -> None:
    """Distribution of the correct count per run, and of AIMO-3's two-run score, per policy."""
    fig, (single, double) = plt.subplots(1, 2, figsize=(10, 3.8))
    for policy in result["policies"]:
        for ax, values, step in ((single, policy["scores"], 1.0), (double, policy["two_run_scores"], 0.5)):
            bins = np.arange(min(values) - step / 2, max(values) + step, step)
            ax.hist(values, bins=bins, histtype="step", linewidth=1.5, label=policy["policy"])
    limit_h = result["time_limit_s"] / 3600
    for ax, title in ((single, "one run"), (double, "two-run score (AIMO-3)")):
        ax.set_xlabel(f"score of {result['problems']} problems")
        ax.set_ylabel("runs")
        ax.set_title(f"{title}: {limit_h:.3g} h, N={result['num_samples']}, stop {result['early_stop'] or 'off'}",
                     fontsize=9)
        ax.legend(fontsize=7)
    _save(fig, path)
