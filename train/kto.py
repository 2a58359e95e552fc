"""KTO on the kit's own labelled samples (``train.kto_data``), with TRL's KTOTrainer.

    python -m train.kto --config train/recipes/smoke/kto.yaml

A recipe's keys are fields of ``KTOScriptArguments`` (below), TRL's ``KTOConfig`` and
``ModelConfig``; an unknown key fails before any model loads. Training resumes from the last
checkpoint in ``output_dir``.

TRL advises keeping ``desirable_weight * n_desirable / (undesirable_weight * n_undesirable)``
between 1 and 4/3. With ``balance_weights: true`` (the default) the desirable weight is set
from the data's label counts to the low end of that range, so a model that is mostly wrong
(few desirable samples) still learns from what it got right.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.trainer_utils import get_last_checkpoint
from trl import KTOConfig, KTOTrainer, ModelConfig, TrlParser, get_peft_config

log = logging.getLogger(__name__)


@dataclass
class KTOScriptArguments:
    dataset: str = field(metadata={"help": "JSONL written by `python -m train.kto_data` (prompt, completion, label)."})
    balance_weights: bool = field(default=True, metadata={"help": "Set desirable_weight from the label counts (TRL's 1 to 4/3 rule)."})


def load_kto_rows(path: str) -> list[dict]:
    rows = []
    for line_no, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        missing = {"prompt", "completion", "label"} - set(row)
        if missing:
            raise ValueError(f"{path}:{line_no}: missing {sorted(missing)}")
        rows.append({"prompt": row["prompt"], "completion": row["completion"], "label": bool(row["label"])})
    return rows


def balanced_desirable_weight(n_desirable: int, n_undesirable: int, undesirable_weight: float) -> float:
    """The desirable weight that puts TRL's ratio at 1 (the low end of [1, 4/3])."""
    if not n_desirable or not n_undesirable:
        raise ValueError(f"KTO needs both labels: {n_desirable} desirable, {n_undesirable} undesirable rows")
    return undesirable_weight * n_undesirable / n_desirable


def main(script_args: KTOScriptArguments, training_args: KTOConfig, model_args: ModelConfig) -> None:
    # --- data
    rows = load_kto_rows(script_args.dataset)
    n_desirable = sum(r["label"] for r in rows)
    if script_args.balance_weights:
        training_args.desirable_weight = balanced_desirable_weight(
            n_desirable, len(rows) - n_desirable, training_args.undesirable_weight)
    log.info("KTO on %d rows (%d desirable); desirable_weight %.3f", len(rows), n_desirable, training_args.desirable_weight)

    # --- model
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path)
    model = AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path, dtype=model_args.dtype)

    # --- train
    trainer = KTOTrainer(model=model, args=training_args, train_dataset=Dataset.from_list(rows),
                         processing_class=tokenizer, peft_config=get_peft_config(model_args))
    last = get_last_checkpoint(training_args.output_dir) if Path(training_args.output_dir).is_dir() else None
    trainer.train(resume_from_checkpoint=last)

    # --- save
    trainer.save_model(training_args.output_dir)
    trainer.save_state()  # trainer_state.json: the loss history, for reports and resume checks
    tokenizer.save_pretrained(training_args.output_dir)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    main(*TrlParser((KTOScriptArguments, KTOConfig, ModelConfig)).parse_args_and_config())
