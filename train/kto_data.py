"""KTO data: SC-TIR completions sampled with the kit from the SFT model, labelled by the
evaluation grader against the ground truth (Numina's KTO stage).

    python -m train.kto_data --config train/recipes/smoke/kto_data.yaml

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

import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from eval.grading.grader import Grader
from eval.splits import EvalProblem, load_split
from kit.answers import get_profile
from kit.config import KitConfig, load_config
from kit.tir import chat_messages
from train.decontaminate import build_eval_ngrams, decontaminate

log = logging.getLogger(__name__)


@dataclass
class KtoDataArguments:
    model: str = field(metadata={"help": "The SFT model folder to sample from."})
    problems: str = field(metadata={"help": "Problems with answers: a .jsonl/.csv/.parquet file or a split name."})
    output: str = field(metadata={"help": "Where to write the labelled rows (JSONL)."})
    kit_config: str = field(default="cpu-smol", metadata={"help": "Kit config (name in kit/configs or a path) for sampling."})
    samples_per_problem: int = field(default=4, metadata={"help": "Completions per problem (Numina: 4)."})
    limit: int | None = field(default=None, metadata={"help": "Only the first K problems."})
    problem_time_s: float = field(default=120.0, metadata={"help": "Time limit per problem."})
    problems_in_flight: int = field(default=1, metadata={"help": "Problems sampled at once: raise it to keep a large batch or several data-parallel replicas (the kit config's data_parallel_size) busy."})
    add_reference_solutions: bool = field(default=False, metadata={"help": "Also add each problem's reference solution from the data as a desirable row: for models too weak to be right (smoke runs). Numina's KTO uses samples only."})
    decontaminate_against: list[str] = field(default_factory=lambda: ["aime", "amc", "amc23", "math-l4", "math-l5", "math500", "gsm8k"],
                                             metadata={"help": "Evaluation splits whose problems must not be trained on (13-gram overlap)."})


def sampling_config(args: KtoDataArguments) -> KitConfig:
    # No early stop: KTO wants every sample, right and wrong.
    return load_config(args.kit_config, model=args.model, num_samples=args.samples_per_problem, early_stop=[],
                       problem_time_s=args.problem_time_s)


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
    """The data's own solutions (the assistant turn of its chats) as desirable rows."""
    from train.chats import load_messages

    solutions = {row["id"]: row["messages"][-1]["content"] for row in load_messages(source, decontaminate=False)}
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
    cfg = sampling_config(args)
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


if __name__ == "__main__":
    from trl import TrlParser

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    (script_args,) = TrlParser((KtoDataArguments,)).parse_args_and_config()
    main(script_args)
