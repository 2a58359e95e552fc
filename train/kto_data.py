"""KTO data: SC-TIR completions sampled with the kit from the SFT model, labelled by the
evaluation grader against the ground truth (Numina's KTO stage).

    python -m train kto-data --config train/recipes/smoke/kto_data.yaml

The kit's settings (the model to sample, samples per problem, time per problem, ...) are the
recipe's ``kit:`` mapping, read by the kit's own ``load_config`` (``train.common``); early stopping
is always off, since KTO wants every sample, right and wrong.

The prompts are the kit's own (its chat template, prompt template and system prompt) and
the completions are the kit's traces, tool outputs included, so KTO sees exactly what
the kit shows the model at inference (train.kto keeps the tool outputs out of the loss). Model-written code runs in the kit's sandbox, so
sampling survives code that hangs or crashes. Each row: ``prompt`` and ``completion`` in
TRL's conversational form, ``label`` (True when the candidate's answer is right),
``problem_id``. Candidates cancelled at a deadline are left out (their text is incomplete),
and so are candidates that ended in a kit error (e.g. the sandbox could not open a session):
their traces stop where the kit failed, not where the model went wrong.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm
from trl import TrlParser

from eval.grading.grader import Grader
from eval.splits import SPLITS, EvalProblem, load_split
from kit.answers import get_profile
from kit.config import KitConfig
from kit.tir import chat_messages
from train.chats import load_messages, training_format
from train.common import KIT_HELP, kit_config, kit_mapping, log_to_stdout
from train.decontaminate import build_eval_ngrams, decontaminate

log = logging.getLogger(__name__)


@dataclass
class KtoDataArguments:
    problems: str = field(metadata={"help": "Problems with answers: a .jsonl/.csv/.parquet file, a split name or a hub dataset id."})
    output: str = field(metadata={"help": "Where to write the labelled rows (JSONL)."})
    kit: dict | str | None = field(default_factory=dict, metadata={"help": KIT_HELP + " Set `model` to the SFT model folder to sample from (Numina: 4 samples per problem, num_samples)."})
    limit: int | None = field(default=None, metadata={"help": "Only the first K problems."})
    problems_in_flight: int = field(default=1, metadata={"help": "Problems sampled at once: raise it to keep a large batch or several data-parallel replicas (the kit's data_parallel_size) busy."})
    add_reference_solutions: bool = field(default=False, metadata={"help": "Also add each problem's reference solution from the data as a desirable row, rendered in the kit's tool_format: for models too weak to be right (smoke runs). Numina's KTO uses samples only."})
    decontaminate_against: list[str] = field(default_factory=lambda: list(SPLITS),
                                             metadata={"help": "Evaluation splits whose problems must not be trained on (13-gram overlap)."})

    def __post_init__(self) -> None:
        self.kit = kit_mapping(self.kit)
        cfg = self.sampling_config()  # a bad kit setting fails now, while the recipe is parsed
        if self.add_reference_solutions:
            training_format(cfg)  # reference solutions are rendered in it: harmony has no rendering

    def sampling_config(self) -> KitConfig:
        # No early stop: KTO wants every sample, right and wrong.
        return kit_config(self.kit, early_stop=[])


def clean_problems(args: KtoDataArguments) -> list[EvalProblem]:
    problems, _ = load_split(args.problems, args.limit)
    if not args.decontaminate_against:
        return problems
    rows = [{"id": p.id, "problem": p.problem} for p in problems]
    kept, report = decontaminate(rows, build_eval_ngrams(args.decontaminate_against))
    if report["dropped"]:
        log.warning("decontamination dropped %d of %d problems", len(problems) - len(kept), len(problems))
    kept_ids = {row["id"] for row in kept}
    return [p for p in problems if p.id in kept_ids]


def sample_rows(solver, grader: Grader, problems: list[EvalProblem], cfg: KitConfig,
                in_flight: int = 1) -> list[dict]:
    """Solve the problems with the kit, ``in_flight`` at a time, and turn every finished
    candidate into a KTO row."""
    rows = []
    profile = get_profile(cfg.profile)
    progress = tqdm(total=len(problems), desc="KTO sampling", unit="problem")
    # Chunks of several rounds of in_flight problems: progress shows, and a slow problem holds
    # back only its own chunk.
    chunk = 4 * in_flight
    results = []
    for start in range(0, len(problems), chunk):
        batch = problems[start:start + chunk]
        results += zip(batch, solver.solve_many([(p.id, p.problem) for p in batch], in_flight))
        progress.update(len(batch))
    progress.close()
    for p, result in results:
        prompt = chat_messages(p.problem, cfg.prompt_template, cfg.system_prompt)
        for c in result.candidates:
            if c.status == "cancelled" or c.reason.startswith("error") or not c.text:
                continue
            answer = c.graded_answer(profile)
            label = answer is not None and grader.grade(p.answer, answer).correct
            rows.append({"prompt": prompt, "completion": [{"role": "assistant", "content": c.text}],
                         "label": label, "problem_id": p.id, "candidate": c.index})
    return rows


def reference_rows(source: str, problems: list[EvalProblem], cfg: KitConfig) -> list[dict]:
    """The data's own solutions (the assistant turn of its chats, in the kit's tool format) as
    desirable rows."""
    rows = load_messages(source, tool_format=training_format(cfg), decontaminate=False)
    solutions = {row["id"]: row["messages"][-1]["content"] for row in rows}
    return [{"prompt": chat_messages(p.problem, cfg.prompt_template, cfg.system_prompt),
             "completion": [{"role": "assistant", "content": solutions[p.id]}],
             "label": True, "problem_id": p.id, "candidate": "reference"}
            for p in problems if p.id in solutions]


def main(args: KtoDataArguments) -> None:
    from kit.solver import Solver

    # --- problems, minus anything that overlaps an evaluation split
    problems = clean_problems(args)
    if not problems:
        raise ValueError(f"{args.problems}: no problems left after decontamination")
    # --- sample with the kit and grade
    cfg = args.sampling_config()
    with Solver(cfg) as solver, Grader() as grader:
        rows = sample_rows(solver, grader, problems, cfg, args.problems_in_flight)
    if args.add_reference_solutions:
        rows += reference_rows(args.problems, problems, cfg)
    # Mixed labels in every batch: KTO's KL baseline compares within a batch.
    random.Random(0).shuffle(rows)
    # --- write
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    desirable = sum(r["label"] for r in rows)
    print(f"wrote {len(rows)} KTO rows to {out}: {desirable} desirable, {len(rows) - desirable} undesirable")
    if not desirable or desirable == len(rows):
        log.warning("the KTO data has only one label; KTO needs both (sample more, or a stronger model)")


def make_parser(subparsers: argparse._SubParsersAction | None = None) -> TrlParser:
    """TRL's script convention: the step's own parser, or its subcommand of ``python -m train``."""
    if subparsers is not None:
        return subparsers.add_parser("kto-data", help="sample and label KTO data with the kit",
                                     dataclass_types=(KtoDataArguments,))
    return TrlParser((KtoDataArguments,), prog="python -m train kto-data")


if __name__ == "__main__":
    log_to_stdout()
    main(*make_parser().parse_args_and_config())
