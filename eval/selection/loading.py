"""Reading the samples the selection lab replays: saved eval runs (``python -m eval run``'s
directories) and plain samples tables (:mod:`eval.selection.tables`), pooled per problem.

A run directory holds ``config.yaml`` (the kit config, the split, the seeds, the model),
``problems.jsonl`` (one line per (seed, problem): gold, wall time) and ``samples.jsonl`` (one line
per candidate). Each (seed, problem) of a run is one draw of N candidates; the draws of a problem
are pooled into one :class:`ProblemSamples` (a run over seeds 0,1,2 at N=8 gives 24 samples per
problem), and so are the draws of other runs of the same split — but only when those runs share
every sampling setting in :data:`SAMPLING_SETTINGS`: samples drawn from different distributions
are not draws of one candidate, and pooling them would answer a question nobody asked. Runs that
differ are refused with an error naming the differing settings (run them as separate ``eval
select`` calls to compare them). Runs of different splits are different problems and are kept
apart (each problem knows its split).

Pooling also refuses the same draw twice (one (seed, problem) in two runs with the same settings:
vLLM's engine seed makes them the same samples, and counting them twice would shrink every
interval for nothing) and a problem whose gold answer differs between runs.

Candidate indices are renumbered over the pooled draws (draw by draw, in the order the runs were
given and then by seed), so ``Sample.order`` is unique within a problem: it breaks ties in finish
time and in votes as the candidate index does in the kit.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import yaml

from eval.runs import read_complete_lines
from eval.selection.draws import Draw, Source
from eval.selection.samples import ProblemSamples, Sample
from eval.selection.tables import read_tables

# The kit settings that make two runs' candidates draws from the same distribution: the model
# (the resolved path the run used), how tokens are sampled and how many, the prompt, the
# tool-call format and code rounds, and the answer rule (it decides which answers are equal votes).
SAMPLING_SETTINGS = ("model", "temperature", "top_p", "top_k", "min_p", "max_new_tokens", "max_candidate_tokens",
                     "tool_format", "max_code_rounds", "prompt_template", "profile")

# The score column a run's reward-model scores (Candidate.reward_score) become.
REWARD_SCORE = "reward"

# The run-directory layout this reads: runs without early stop (every candidate finished),
# graded on the submitted answer (eval.runner.run_identity).
RECORD_FORMAT = 2


@dataclass(frozen=True)
class LoadedSamples:
    problems: list[ProblemSamples]
    sources: list[Source]

    def pooled(self) -> dict[str, list[str]]:
        """Per split, the sources whose samples were pooled per problem."""
        by_split: dict[str, list[str]] = defaultdict(list)
        for source in self.sources:
            by_split[source.split].append(source.path)
        return dict(by_split)


def split_name(split: str) -> str:
    """A run's split as the report names it: a file's stem for a split given as a file."""
    path = Path(split)
    return path.stem if path.suffix in (".jsonl", ".csv", ".parquet") else split


def run_settings(config: dict) -> dict:
    kit_config = config["kit_config"]
    settings = {name: kit_config[name] for name in SAMPLING_SETTINGS if name != "model"}
    return {"model": config["model_path"], **settings}


def read_run_config(run: Path) -> dict:
    path = run / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{run}: no config.yaml (not a `python -m eval run` directory)")
    config = yaml.safe_load(path.read_text())
    missing = [key for key in ("record_format", "split", "seeds", "model_path", "kit_config") if key not in config]
    if missing:
        raise ValueError(f"{path}: not an eval run's config (lacks {missing})")
    if config["record_format"] != RECORD_FORMAT:
        raise ValueError(f"{path}: record_format {config['record_format']} (made with early stop on, so not "
                         f"every candidate finished); the selection lab reads format {RECORD_FORMAT} runs")
    return config


def code_ok(cells: list[dict]) -> bool | None:
    """Whether every code cell of a candidate ran without error or time-out; None if it ran none."""
    if not cells:
        return None
    return all(cell["error"] is None and not cell["timed_out"] for cell in cells)


def sample_from_record(record: dict) -> Sample:
    """A candidate record of samples.jsonl as a Sample (``order`` is renumbered when pooled).
    The entropies are absent in runs made before the kit recorded them (issue #13), the reward
    model's score (``reward_score``, the score column ``reward``) in runs made before it."""
    reward = record.get("reward_score")
    return Sample(answer=record["answer"], correct=bool(record["correct"]), tokens=record["generated_tokens"],
                  finish_s=record["finished_at_s"], order=record["index"],
                  mean_entropy=record.get("mean_entropy"), tail_entropy=record.get("tail_entropy"),
                  code_ok=code_ok(record["cells"]), scores={} if reward is None else {REWARD_SCORE: float(reward)})


def read_run(run: Path) -> tuple[Source, list[Draw]]:
    """A run directory's draws: one per (seed, problem) whose problem line was written."""
    config = read_run_config(run)
    split = split_name(config["split"])
    problems = {(r["seed"], r["problem_id"]): r for r in read_complete_lines(run / "problems.jsonl")}
    if not problems:
        raise ValueError(f"{run}: problems.jsonl holds no finished problem")
    by_draw: dict[tuple[int, str], list[Sample]] = defaultdict(list)
    for line_no, record in enumerate(read_complete_lines(run / "samples.jsonl"), 1):
        try:
            key = (record["seed"], record["problem_id"])
            if key in problems:  # candidates of a problem whose line was never written are not a draw
                by_draw[key].append(sample_from_record(record))
        except KeyError as exc:
            raise ValueError(f"{run / 'samples.jsonl'}:{line_no}: a candidate record without {exc}") from exc
    draws = []
    for (seed, problem_id), record in sorted(problems.items(), key=lambda item: item[0]):
        samples = sorted(by_draw[(seed, problem_id)], key=lambda s: s.order)
        if not samples:
            raise ValueError(f"{run}: problem {problem_id!r} (seed {seed}) has no candidates in samples.jsonl")
        draws.append(Draw(str(run), split, str(problem_id), str(record["gold"]), samples, record["elapsed_s"], seed))
    source = Source(str(run), "run", split, problems=len({p for _, p in problems}),
                    samples=sum(len(d.samples) for d in draws), seeds=tuple(sorted({s for s, _ in problems})),
                    settings=run_settings(config), num_samples=config["kit_config"]["num_samples"])
    return source, draws


def check_poolable(sources: list[Source]) -> None:
    """Refuse runs of one split whose sampling settings differ, naming the settings."""
    first_of_split: dict[str, Source] = {}
    for source in sources:
        if source.kind != "run":
            continue
        first = first_of_split.setdefault(source.split, source)
        differing = [name for name in SAMPLING_SETTINGS if source.settings[name] != first.settings[name]]
        if differing:
            details = "; ".join(f"{name}: {first.settings[name]!r} vs {source.settings[name]!r}" for name in differing)
            raise ValueError(f"cannot pool {first.path} and {source.path} (split {source.split}): their sampling "
                             f"settings differ in {differing} ({details}); select over each apart")


def pool(draws: list[Draw]) -> list[ProblemSamples]:
    """The draws of each (split, problem) as one ProblemSamples, candidate orders renumbered over
    the draws; problems in the order they first appear."""
    by_problem: dict[tuple[str, str], list[Draw]] = {}
    for draw in draws:
        by_problem.setdefault((draw.split, draw.problem_id), []).append(draw)
    problems = []
    for (split, problem_id), problem_draws in by_problem.items():
        golds = {d.gold for d in problem_draws}
        if len(golds) > 1:
            raise ValueError(f"problem {problem_id!r} (split {split}) has different gold answers in "
                             f"{sorted({d.source for d in problem_draws})}: {sorted(golds)}")
        samples, offset = [], 0
        for draw in problem_draws:
            samples.extend(Sample(**{**vars(s), "order": offset + rank}) for rank, s in enumerate(draw.samples))
            offset += len(draw.samples)
        elapsed = [d.elapsed_s for d in problem_draws if d.elapsed_s is not None]
        # Draws ran apart; the pooled problem's wall time is the longest draw's (every finish_s fits in it).
        problems.append(ProblemSamples(problem_id, golds.pop(), split, tuple(samples),
                                       elapsed_s=max(elapsed) if elapsed else None))
    return problems


def load_samples(runs: list[str | Path], tables: list[str | Path] = ()) -> LoadedSamples:
    """Run directories and samples tables, pooled per problem (module docstring)."""
    if not runs and not tables:
        raise ValueError("give at least one run directory or --table")
    seen_runs = [Path(r).resolve() for r in runs]
    if len(set(seen_runs)) != len(seen_runs):
        raise ValueError(f"a run directory is given twice: {[str(r) for r in runs]}")
    sources, draws = [], []
    for run in runs:
        source, run_draws = read_run(Path(run))
        sources.append(source)
        draws.extend(run_draws)
    check_poolable(sources)
    owner: dict[tuple[str, str, int], str] = {}  # (split, problem, seed) -> the run that holds that draw
    for draw in draws:
        key = (draw.split, draw.problem_id, draw.seed)
        if key in owner:
            raise ValueError(f"{owner[key]} and {draw.source} both hold seed {draw.seed} of problem "
                             f"{draw.problem_id!r}: the same draw twice (vLLM's seed makes the same samples)")
        owner[key] = draw.source
    table_sources, table_draws = read_tables([Path(t) for t in tables])
    taken = {(d.split, d.problem_id): d.source for d in draws}
    for draw in table_draws:
        key = (draw.split, draw.problem_id)
        if key in taken:
            raise ValueError(f"problem {draw.problem_id!r} (split {draw.split}) is in both {taken[key]} and "
                             f"{draw.source}: a table has no sampling settings to check, so it is not pooled "
                             "(give the table its own split column)")
        taken[key] = draw.source
    return LoadedSamples(pool(draws + table_draws), sources + table_sources)


def load_runs(paths: list[str | Path]) -> list[ProblemSamples]:
    """The problems of one or more run directories, pooled per problem."""
    return load_samples(paths).problems
