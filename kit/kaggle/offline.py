"""Offline set-up inside a Kaggle notebook, before the kit's dependencies are importable: this
module uses the standard library only.

Where Kaggle mounts an attached input. Two layouts are in use, and one notebook may see both
(its competition in one, its datasets in the other), so each input is looked up on its own:

- 2026 notebooks: datasets at ``/kaggle/input/datasets/<owner>/<slug>``, models at
  ``/kaggle/input/models/<owner>/<model>/<framework>/<variation>/<version>``, the competition's
  data at ``/kaggle/input/competitions/<slug>``. Found, as nobody with a Kaggle account checked
  it here: a listing of ``/kaggle/input`` in a notebook (helmet-png/m45-imf-analysis#18,
  August 2026); ``yasumorishima/kaggle-notebook-deploy``'s README.md ("competition_sources
  data is mounted under competitions/", datasets there still at ``/kaggle/input/<slug>``: the
  mixed case); AIMO-3 notebooks of 2026 that read ``/kaggle/input/competitions/
  ai-mathematical-olympiad-progress-prize-3/`` (``test.csv``, ``reference.csv``, and
  ``kaggle_evaluation/`` beside them) and others that try that and the older path in turn.
- The older layout of AIMO-3's time (late 2025): ``/kaggle/input/<slug>`` for a dataset or a
  competition, ``/kaggle/input/<model>/<framework>/<variation>/<version>`` for a model.

The ``*_mounts`` functions give an input's two paths, the 2026 one first, and ``find_input``
takes the first that exists. The newer path goes first because it is the exact one: it names
the owner (another user's ``gpt-oss-120b``, or a dataset named like the competition, can sit at
the older, owner-less path of a machine that mixes the layouts); where both exist they are the
same files. ``resolve_input`` raises, naming every path and the fix, when none exists. The
submission notebook's bootstrap cell, which runs before the kit is importable, applies the same
rule to ``KIT_SOURCE`` in a few lines of its own.

``install_wheels`` installs the kit's GPU requirements from the wheelhouse dataset that
``python -m kit bundle`` wrote (``pip install --no-index --find-links``): nothing is fetched
from the internet, which is off in a submission.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().parents[1] / "requirements-gpu.txt"
KAGGLE_INPUT = "/kaggle/input"  # read at each call: tests lay a tmp folder out in its place

# An input's paths: one folder, or the folders Kaggle may mount it at, in the order tried.
Paths = str | Path | Sequence[str | Path]


class InputNotFoundError(FileNotFoundError):
    """An input the notebook needs is at none of the paths Kaggle mounts it at."""


def dataset_mounts(ref: str, root: str | None = None) -> tuple[str, str]:
    """The dataset ``owner/slug`` under ``root`` (default /kaggle/input): (2026 layout, older layout)."""
    owner, slug = _split(ref, 2, "dataset", "OWNER/SLUG")
    root = root or KAGGLE_INPUT
    return f"{root}/datasets/{owner}/{slug}", f"{root}/{slug}"


def model_mounts(source: str, root: str | None = None) -> tuple[str, str]:
    """The Kaggle model ``owner/model/framework/variation/version``: (2026 layout, older layout)."""
    _, model, framework, variation, version = _split(source, 5, "model", "OWNER/MODEL/FRAMEWORK/VARIATION/VERSION")
    root = root or KAGGLE_INPUT
    return f"{root}/models/{source}", f"{root}/{model}/{framework}/{variation}/{version}"


def competition_mounts(slug: str, root: str | None = None) -> tuple[str, str]:
    """The competition's data folder (test.csv, kaggle_evaluation/): (2026 layout, older layout)."""
    (slug,) = _split(slug, 1, "competition", "SLUG")
    root = root or KAGGLE_INPUT
    return f"{root}/competitions/{slug}", f"{root}/{slug}"


def candidates(paths: Paths) -> list[str]:
    """``paths`` as the list tried: one path is a list of one; empty entries are dropped (an
    empty path would be the working directory)."""
    listed = [paths] if isinstance(paths, (str, Path)) else list(paths)
    return [str(p) for p in listed if str(p)]


def find_input(paths: Paths) -> Path | None:
    """The first of ``paths`` that exists, or None."""
    return next((Path(p) for p in candidates(paths) if Path(p).exists()), None)


def input_not_found(paths: Paths, what: str, fix: str) -> InputNotFoundError:
    """The error for ``what`` at none of ``paths``: every path tried, then ``fix``."""
    tried = candidates(paths)
    where = " or ".join(tried) if tried else "no path (none was given)"
    return InputNotFoundError(f"{what} not found at {where}; {fix}")


def resolve_input(paths: Paths, what: str, fix: str) -> Path:
    """The first of ``paths`` that exists; InputNotFoundError naming ``what``, every path and
    ``fix`` when none does."""
    found = find_input(paths)
    if found is None:
        raise input_not_found(paths, what, fix)
    return found


def install_wheels(wheels_dir: Paths, requirements: str | Path = REQUIREMENTS) -> bool:
    """Install ``requirements`` from the first of ``wheels_dir`` that exists, only. Returns False
    (and installs nothing) when none does, as off Kaggle, where the environment already has the
    kit's dependencies; raises with pip's output when the install fails."""
    found = find_input(wheels_dir)
    if found is None or not found.is_dir():
        print(f"no wheelhouse at {' or '.join(candidates(wheels_dir)) or '(none given)'}: using the installed packages")
        return False
    cmd = [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", str(found),
           "--quiet", "-r", str(requirements)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"offline install from {found} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    print(f"installed {Path(requirements).name} from {found}")
    return True


def _split(ref: str, parts: int, kind: str, form: str) -> list[str]:
    split = ref.split("/")
    if len(split) != parts or not all(split):
        raise ValueError(f"{kind} {ref!r} is not {form}")
    return split
