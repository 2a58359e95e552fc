"""Offline set-up inside a Kaggle notebook, before the kit's dependencies are importable: this
module uses the standard library only.

``install_wheels`` installs the kit's GPU requirements from the wheelhouse dataset that
``python -m kit bundle`` wrote (``pip install --no-index --find-links``): nothing is fetched
from the internet, which is off in a submission.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().parents[1] / "requirements-gpu.txt"


def install_wheels(wheels_dir: str | Path, requirements: str | Path = REQUIREMENTS) -> bool:
    """Install ``requirements`` from ``wheels_dir`` only. Returns False (and installs nothing)
    when the folder is absent, as off Kaggle, where the environment already has the kit's
    dependencies; raises with pip's output when the install fails."""
    wheels_dir = Path(wheels_dir)
    if not wheels_dir.is_dir():
        print(f"no wheelhouse at {wheels_dir}: using the installed packages")
        return False
    cmd = [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", str(wheels_dir),
           "--quiet", "-r", str(requirements)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"offline install from {wheels_dir} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    print(f"installed {Path(requirements).name} from {wheels_dir}")
    return True
