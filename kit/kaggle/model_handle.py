"""A Kaggle Models handle (``python -m kit bundle --kaggle-model``): the notebook attaches a model
Kaggle already hosts, such as ``openai/gpt-oss-120b/transformers/default/1``, instead of a copy
uploaded as a dataset (which stays the way for small or fine-tuned models).

What the two ends expect, as found (no Kaggle account was used to check them here):

- ``kernel-metadata.json``'s ``model_sources`` takes ``owner/model/framework/variation/version``
  (kaggle-cli, docs/kernels_metadata.md), and ``kaggle kernels push`` refuses a source without
  all five parts ("Model instance version must be specified in the form of ...",
  kaggle-cli's ``validate_model_instance_version_string``). A handle without a version gets 1,
  the first version, with a warning: the latest cannot be looked up offline.
- Where the notebook finds it: ``/kaggle/input/models/<owner>/<model>/<framework>/<variation>/
  <version>`` in notebooks of 2026 (2026 notebooks read models from such paths, e.g.
  ``/kaggle/input/models/metric/nemotron-3-nano-30b-a3b-bf16/transformers/default/1``), and
  ``/kaggle/input/<model>/<framework>/<variation>/<version>`` in notebooks of AIMO-3's time
  (late 2025: ``/kaggle/input/gpt-oss-120b/transformers/default/1``). ``KaggleModel.mounts``
  gives both, the 2026 one first (``kit.kaggle.offline``: the layouts, their sources, and why
  that order); the notebook takes the first that exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kit.kaggle.offline import model_mounts

# Slugs as Kaggle writes them: letters, digits, '.', '_' and '-' (qwen2.5, bge-large-en-v1.5).
PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
EXAMPLE = "openai/gpt-oss-120b/transformers/default/1"


@dataclass(frozen=True)
class KaggleModel:
    owner: str
    model: str
    framework: str
    variation: str
    version: int

    @property
    def source(self) -> str:
        """The ``model_sources`` entry of kernel-metadata.json."""
        return f"{self.owner}/{self.model}/{self.framework}/{self.variation}/{self.version}"

    @property
    def mounts(self) -> tuple[str, str]:
        """Where a notebook finds the model's files: (2026 layout, older layout)."""
        return model_mounts(self.source)


def parse_kaggle_model(handle: str) -> tuple[KaggleModel, str | None]:
    """The model a handle ``OWNER/MODEL/FRAMEWORK/VARIATION[/VERSION]`` names, and a warning
    when the version was left out (then 1); ValueError naming the handle when it is not one."""
    parts = handle.split("/")
    if len(parts) not in (4, 5) or not all(PART.fullmatch(p) for p in parts[:4]):
        raise ValueError(f"--kaggle-model {handle!r}: expected OWNER/MODEL/FRAMEWORK/VARIATION[/VERSION] "
                         f"(letters, digits, '.', '_', '-'), e.g. {EXAMPLE}")
    if len(parts) == 5 and not re.fullmatch(r"[1-9][0-9]*", parts[4]):
        raise ValueError(f"--kaggle-model {handle!r}: the version {parts[4]!r} is not a number from 1 up, "
                         f"e.g. {EXAMPLE}")
    model = KaggleModel(*parts[:4], version=int(parts[4]) if len(parts) == 5 else 1)
    warning = None if len(parts) == 5 else (
        f"--kaggle-model {handle!r} names no version: using {model.source} (kernel-metadata.json needs one); "
        "check the model's page on Kaggle for its latest")
    return model, warning
