"""The command line refuses bad input with a clear message, before any engine starts."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def kit(*args, env=None):
    return subprocess.run([sys.executable, "-m", "kit", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env=env)


def test_empty_problem_is_refused():
    proc = kit("solve", "--problem", "  ")
    assert proc.returncode == 2 and "--problem is empty" in proc.stderr


def test_unreadable_problem_file_is_named(tmp_path):
    proc = kit("solve", "--input", str(tmp_path / "missing.jsonl"))
    assert proc.returncode == 2 and "missing.jsonl does not exist" in proc.stderr


def test_broken_problem_file_names_the_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"problem": "1+1"}\nnot json\n')
    proc = kit("solve", "--input", str(path))
    assert proc.returncode == 2 and "p.jsonl:2: not valid JSON" in proc.stderr


def test_missing_model_folder_is_named(tmp_path):
    proc = kit("solve", "--problem", "1+1?", "--model", str(tmp_path / "nomodel"))
    assert proc.returncode == 2 and "nomodel has no config.json" in proc.stderr


def test_unprepared_embedded_model_gives_the_command_that_prepares_it(tmp_path):
    import os

    proc = kit("solve", "--problem", "1+1?", env={**os.environ, "KIT_CACHE": str(tmp_path)})
    assert proc.returncode == 2 and "python -m kit prepare-model" in proc.stderr


def test_bad_config_value_is_named():
    proc = kit("solve", "--problem", "1+1?", "--mode", "fast")
    assert proc.returncode == 2 and "mode" in proc.stderr
