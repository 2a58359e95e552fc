"""What every step of the training chain does the same way: resuming a trainer, and reading
the kit's settings from a recipe.

Resuming: ``resume_checkpoint`` is what each trainer script (train/sft.py, train/kto.py) gives
``Trainer.train``: the recipe's ``resume_from_checkpoint`` when it sets one, else the last
``checkpoint-*`` in ``output_dir``, so a killed run picks up where it stopped when run again.

Kit settings: a step that runs the kit (train/sample.py) takes them as one ``kit:`` mapping
in its recipe, ``config`` (a kit config name in kit/configs or a path) plus ``KitConfig`` fields
overriding it, sections (``executor:``) as nested mappings::

    kit:
      config: train/recipes/smoke/kit_tir.yaml
      model: runs/train/smoke/sft_tir
      num_samples: 4

The mapping goes to ``kit.config.load_config`` as it is, so the kit's own rules decide (its
fields are not declared again here) and an unknown field fails while the recipe is parsed.
On the command line: ``--kit '{config: sampling-8gpu, model: runs/x}'`` (YAML or JSON) replaces
the recipe's mapping whole.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import yaml
from transformers import TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from kit.config import KitConfig, load_config

log = logging.getLogger(__name__)

DEFAULT_KIT_CONFIG = "cpu-smol"
KIT_HELP = ("The kit's settings: a mapping of `config` (a kit config name in kit/configs or a path; default "
            f"{DEFAULT_KIT_CONFIG}) and KitConfig fields overriding it (kit/config.py), e.g. "
            "{config: sampling-8gpu, model: runs/train/numina/sft_tir}. On the command line as YAML or JSON.")


def log_to_stdout() -> None:
    """The chain's log format, for ``python -m train STEP`` and ``python -m train.STEP`` alike."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stdout)


def resume_checkpoint(training_args: TrainingArguments) -> str | bool | None:
    """The checkpoint a trainer resumes from: ``resume_from_checkpoint`` when the recipe sets it
    (a checkpoint folder, or ``true``: the last one in ``output_dir``, which must exist), else
    the last ``checkpoint-*`` in ``output_dir``, else None (a fresh start)."""
    explicit = training_args.resume_from_checkpoint
    if isinstance(explicit, str) and not Path(explicit).is_dir():
        raise FileNotFoundError(f"resume_from_checkpoint: no checkpoint folder {explicit}")
    if explicit:
        log.info("resuming from %s (resume_from_checkpoint)", explicit)
        return explicit
    last = get_last_checkpoint(training_args.output_dir) if Path(training_args.output_dir).is_dir() else None
    if last is not None:
        log.info("resuming from %s", last)
    return last


def kit_mapping(value: dict | str | None) -> dict:
    """A recipe's ``kit`` value as a mapping: given as one in YAML, as YAML/JSON text on the
    command line."""
    mapping = yaml.safe_load(value) if isinstance(value, str) else value
    if mapping is None:
        return {}
    if not isinstance(mapping, dict):
        raise ValueError(f"kit: expected a mapping of kit settings (config and KitConfig fields), got {value!r}")
    return mapping


def kit_config(mapping: dict, **forced) -> KitConfig:
    """The kit config a ``kit:`` mapping describes, with ``forced`` settings (the step's own
    rules) over it."""
    settings = dict(mapping)
    name = settings.pop("config", DEFAULT_KIT_CONFIG)
    try:
        return load_config(name, **{**settings, **forced})
    except ValueError as exc:  # the kit names the field; say it came from the recipe's kit mapping
        raise ValueError(f"kit: {exc}") from exc
