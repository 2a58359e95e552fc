"""``python -m train {sft,kto-data,kto,quantize,merge,tiny-model,measure-decontamination} [args]``: one
step of the training chain; each step's own ``--help`` lists its arguments (recipes: ``--config RECIPE.yaml``)."""

import runpy
import sys

STEPS = {"sft": "train.sft", "kto-data": "train.kto_data", "kto": "train.kto", "quantize": "train.quantize",
         "merge": "train.merge", "tiny-model": "train.tiny_model", "measure-decontamination": "train.decontaminate"}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in STEPS:
        sys.exit(f"usage: python -m train {{{','.join(STEPS)}}} [args]")
    step = sys.argv.pop(1)
    sys.argv[0] = f"python -m train {step}"
    runpy.run_module(STEPS[step], run_name="__main__", alter_sys=True)
