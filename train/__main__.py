"""``python -m train STEP [args]``: one step of the training chain. ``python -m train -h`` lists
the steps, ``python -m train STEP -h`` a step's arguments; recipes: ``--config RECIPE.yaml``.

Each step is a script with TRL's own CLI convention (trl/scripts/*.py): ``make_parser(subparsers)``
adds its subcommand to the one parser built here, ``main`` takes what that subcommand parses
(the trainers: ``main(script_args, training_args, model_args)``). A step also runs alone
(``python -m train.sft``, ``accelerate launch -m train.sft``), through the same two functions.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from trl import TrlParser

from train import decontaminate, dpo, kto, merge, quantize, sample, select, sft, tiny_model
from train.common import log_to_stdout

STEPS = (sft, sample, select, dpo, kto, quantize, merge, tiny_model, decontaminate)


def make_parser() -> tuple[argparse.ArgumentParser, dict[str, tuple[argparse.ArgumentParser, Callable]]]:
    """The ``python -m train`` parser, and each step's name, subcommand parser and ``main``."""
    parser = argparse.ArgumentParser(prog="python -m train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="step", required=True, parser_class=TrlParser)
    steps = {}
    for module in STEPS:
        step_parser = module.make_parser(subparsers)
        steps[next(name for name, p in subparsers.choices.items() if p is step_parser)] = (step_parser, module.main)
    return parser, steps


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser, steps = make_parser()
    if not argv or argv[0] not in steps:
        parser.parse_args(argv)  # -h, or the error that names the steps; exits either way
    step_parser, step_main = steps[argv[0]]
    # TrlParser reads the recipe (--config) and refuses a key no dataclass of the step knows.
    step_main(*step_parser.parse_args_and_config(argv[1:]))


if __name__ == "__main__":
    log_to_stdout()
    main()
