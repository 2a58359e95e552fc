"""``python -m eval select RUN_DIR [RUN_DIR ...] [--table FILE ...] [--out DIR] [options]``: which
answer to submit, measured offline on saved samples (README: "Choosing a selection method from
your own samples"). Reads eval run directories and plain samples tables, replays every selection
method at every k, the competition score, the early-stop rules and a simulated competition run,
and writes ``selection.md`` (with plots) and ``selection.json`` into ``--out`` (default: the first
run directory's ``selection/``, else ``./selection``).

As the other subcommands' scripts (TRL's convention): ``make_parser(subparsers)`` adds the
subcommand, ``main(args)`` runs what it parsed.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from eval.selection.options import SelectOptions


def add_option_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per SelectOptions field (``time_limit_s`` -> ``--time-limit-s``), its help the field's."""
    for f in dataclasses.fields(SelectOptions):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        kind = f.metadata.get("type", type(default))
        nargs = "*" if isinstance(default, list) or f.name in ("methods", "k") else None
        parser.add_argument(flag, dest=f.name, type=kind, nargs=nargs, default=default,
                            help=f.metadata["help"].replace("%", "%%"))


def make_parser(subparsers: argparse._SubParsersAction | None = None) -> argparse.ArgumentParser:
    """The ``select`` subcommand of ``python -m eval``, or its own parser."""
    kwargs = {"description": __doc__, "formatter_class": argparse.RawDescriptionHelpFormatter}
    parser = (subparsers.add_parser("select", help="Replay selection methods, early stop and competition runs "
                                    "on saved samples.", **kwargs)
              if subparsers is not None else argparse.ArgumentParser(prog="python -m eval select", **kwargs))
    parser.add_argument("runs", nargs="*", type=Path, help="eval run directories (python -m eval run)")
    parser.add_argument("--table", action="append", type=Path, default=[],
                        help="a plain samples table (JSONL, CSV or Parquet, README); repeatable")
    parser.add_argument("--out", type=Path, help="report folder (default RUN_DIR/selection, else ./selection)")
    add_option_flags(parser)
    return parser


def options_from(args: argparse.Namespace) -> SelectOptions:
    return SelectOptions(**{f.name: getattr(args, f.name) for f in dataclasses.fields(SelectOptions)})


def main(args: argparse.Namespace) -> int:
    from eval.selection.lab import analyse
    from eval.selection.loading import load_samples
    from eval.selection.report import write_selection_report

    options = options_from(args)
    loaded = load_samples(args.runs, args.table)
    out = args.out or (args.runs[0] / "selection" if args.runs else Path("selection"))
    analysis = analyse(loaded, options)
    report = write_selection_report(out, analysis)
    best = max((name for name in analysis["accuracy"] if name != "pass@k"),
               key=lambda name: analysis["accuracy"][name][analysis["score_k"]]["accuracy"])
    at_k = analysis["accuracy"][best][analysis["score_k"]]["accuracy"]
    print(f"{analysis['problems']} problems; best at k={analysis['score_k']}: {best} {100 * at_k:.1f}% "
          f"(pass@k {100 * analysis['accuracy']['pass@k'][analysis['score_k']]['accuracy']:.1f}%); report: {report}")
    return 0


if __name__ == "__main__":
    main(make_parser().parse_args())
