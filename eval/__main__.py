"""Command line: ``python -m eval {run,compare,select}``.

    python -m eval run --split aime --config cpu-smol [--model PATH] [--limit K] [--seeds 1,2,3]
    python -m eval compare RUN_A RUN_B
    python -m eval select RUN_DIR [RUN_DIR ...] [--table FILE] [--methods ...] [--k ...] [--out DIR]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from eval.selection import cli as select
from kit.config import add_config_flags, config_overrides


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eval", description="Score the kit on validation splits.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="Solve a split and write a run directory with a report.")
    run.add_argument("--split", required=True, help="A split name (aime, amc, amc23, math-l4, math-l5, math500, "
                     "gsm8k), a .jsonl/.csv/.parquet file with problem and answer columns, or a hub dataset id.")
    run.add_argument("--config", default="cpu-smol", help="Kit YAML config: a path or a name in kit/configs.")
    run.add_argument("--limit", type=int, help="Only the first K problems.")
    run.add_argument("--seeds", default="0", help="Comma-separated sampling seeds, one full pass each.")
    run.add_argument("--out", help="Run directory (default runs/eval/SPLIT-CONFIG).")
    run.add_argument("--resume", action="store_true", help="Continue a run directory left by this same run.")
    run.add_argument("--force", action="store_true", help="Overwrite a run directory.")
    add_config_flags(run)
    compare = commands.add_parser("compare", help="Two run directories side by side, with per-problem flips.")
    compare.add_argument("run_a", type=Path)
    compare.add_argument("run_b", type=Path)
    select.make_parser(commands)
    return parser


def run(args: argparse.Namespace) -> int:
    from eval.runner import evaluate

    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    summary, out = evaluate(args.split, args.config, limit=args.limit, seeds=seeds, out=args.out,
                            overrides=config_overrides(args), resume=args.resume, force=args.force)
    print(f"accuracy {100 * summary['accuracy']:.1f}% over {summary['problems']} problem runs; report: {out / 'report.md'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        if args.command == "compare":
            from eval.compare import compare_runs

            print(compare_runs(args.run_a, args.run_b))
            return 0
        if args.command == "select":
            return select.main(args)
        return run(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
