"""Command line: ``python -m kit {solve,prepare-model,bundle}``.

    python -m kit prepare-model
    python -m kit solve --problem "What is 2+3?" --config cpu-smol
    python -m kit solve --input problems.jsonl --output answers.csv --traces traces.jsonl
    python -m kit bundle --competition aimo3 --model /path/to/model --out dist/ [--push]
    python -m kit bundle --kaggle-model openai/gpt-oss-120b/transformers/default/1 --config aimo3-gptoss120b-h100
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from contextlib import nullcontext

from kit.kaggle.competitions import COMPETITIONS
from kit.config import add_config_flags, config_overrides, load_config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kit", description="Offline SC-TIR inference kit.")
    commands = parser.add_subparsers(dest="command", required=True)

    prepare = commands.add_parser("prepare-model", help="Convert the embedded SmolLM2 GGUF into a model folder (once).")
    prepare.add_argument("--force", action="store_true", help="Convert again even if the folder exists.")

    solve = commands.add_parser("solve", help="Solve one problem or a file of problems with SC-TIR.")
    source = solve.add_mutually_exclusive_group(required=True)
    source.add_argument("--problem", help="The problem text.")
    source.add_argument("--input", help="A .jsonl, .csv or .parquet file with a 'problem' column (and optionally 'id').")
    solve.add_argument("--output", default="answers.csv", help="Answers CSV (id,answer) for --input.")
    solve.add_argument("--traces", help="Also write every candidate's full trace as JSONL here.")
    solve.add_argument("--limit", type=int, help="Solve only the first K problems of --input.")
    solve.add_argument("--config", default="cpu-smol", help="YAML config: a path or a name in kit/configs.")
    add_config_flags(solve)

    bundle = commands.add_parser("bundle", help="Write the Kaggle datasets (wheels, model, kit) and the submission "
                                 "notebook's metadata; upload them with --push.")
    bundle.add_argument("--competition", default="aimo3", help=f"Competition: {', '.join(sorted(COMPETITIONS))}.")
    bundle.add_argument("--model", default="", help="Model folder (config.json, weights), uploaded as a dataset. "
                        "Default: the embedded one.")
    bundle.add_argument("--kaggle-model", default="", metavar="OWNER/MODEL/FRAMEWORK/VARIATION[/VERSION]",
                        help="A model Kaggle hosts, attached by the notebook instead of --model, e.g. "
                        "openai/gpt-oss-120b/transformers/default/1.")
    bundle.add_argument("--config", default="", help="Kit config the notebook runs (a name in kit/configs). "
                        "Default: the competition's.")
    bundle.add_argument("--out", default="dist", help="Folder to write the bundle into.")
    bundle.add_argument("--owner", help="Kaggle username in the dataset ids (default: KAGGLE_USERNAME, kaggle.json).")
    bundle.add_argument("--push", action="store_true", help="Upload with the kaggle CLI (pip install kaggle six).")
    bundle.add_argument("--no-wheels", dest="wheels", action="store_false", help="Skip downloading the wheelhouse.")
    bundle.add_argument("--python-version", default="3.11", help="Kaggle image's Python, for the wheels.")
    bundle.add_argument("--glibc", default="2.35", help="Kaggle image's glibc: wheels up to manylinux_2_<this>.")
    bundle.add_argument("--requirements", help="Requirements for the wheelhouse (default: kit/requirements-gpu.txt).")
    bundle.add_argument("--pip-arg", dest="pip_args", action="append", default=[], metavar="ARG",
                        help="Extra argument for pip download, repeatable: --pip-arg=--no-index.")
    return parser


def prepare_model(args: argparse.Namespace) -> int:
    from kit.embedded_model import prepare_embedded_model

    started = time.monotonic()
    path = prepare_embedded_model(force=args.force)
    print(f"embedded model ready at {path} ({time.monotonic() - started:.1f} s)")
    return 0


def solve(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from kit.embedded_model import resolve_model_path
    from kit.problem_io import Problem, read_problems
    from kit.solver import Solver
    from kit.traces import format_result, result_record, write_answers

    cfg = load_config(args.config, **config_overrides(args))
    if args.problem is not None:
        if not args.problem.strip():
            raise ValueError("--problem is empty")
        problems = [Problem("problem", args.problem)]
    else:
        problems = read_problems(args.input, args.limit)
    resolve_model_path(cfg.model)  # fail before the engine starts, with the fix in the message

    rows = []
    with Solver(cfg) as solver, (open(args.traces, "w", encoding="utf-8") if args.traces else nullcontext()) as traces:
        progress = tqdm(problems, desc="problems", unit="problem", disable=len(problems) == 1)
        for p in progress:
            result = solver.solve(p.problem, p.id)
            rows.append((p.id, result.answer))
            if traces:
                traces.write(json.dumps(result_record(result), ensure_ascii=False) + "\n")
                traces.flush()
            if len(problems) == 1:
                print(format_result(result))
            else:
                gold = "" if p.answer is None else f"  (reference {p.answer}: {'right' if p.answer == result.answer else 'wrong'})"
                progress.write(f"{p.id}: answer {result.answer}{gold}  votes {result.vote.table}  "
                               f"{result.elapsed_s:.1f} s, stop: {result.stop_reason}")
    if args.input:
        write_answers(args.output, rows)
        print(f"wrote {len(rows)} answers to {args.output}")
    return 0


def bundle(args: argparse.Namespace) -> int:
    from kit.kaggle.bundle import build_bundle

    build_bundle(competition=args.competition, model=args.model, out=args.out, owner=args.owner, push=args.push,
                 wheels=args.wheels, python_version=args.python_version, glibc=args.glibc,
                 requirements=args.requirements, pip_args=args.pip_args, kaggle_model=args.kaggle_model,
                 config=args.config)
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return {"prepare-model": prepare_model, "solve": solve, "bundle": bundle}[args.command](args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
