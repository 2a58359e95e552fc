"""Both notebooks executed headless (nbclient) on CPU with the embedded model: the submission
notebook serves a few problems through the local gateway, the validation notebook scores a
few GSM8K problems and shows the report's plots. Settings are injected as a cell after the
one tagged ``parameters`` (papermill's convention), so the notebooks run as committed."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import polars as pl
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.engine

REPO = Path(__file__).resolve().parent.parent
SMALL = {"num_samples": 2, "max_code_rounds": 1, "max_new_tokens": 64}


def execute(name: str, params: dict, cwd: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(REPO / "notebooks" / name, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    source = "\n".join(f"{k} = {v!r}" for k, v in params.items())
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}))
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    nbformat.write(nb, cwd / name)  # kept for a look when a test fails
    return nb


def outputs_text(nb) -> str:
    return "\n".join(o.get("text", "") + json.dumps(o.get("data", {}).get("text/plain", ""))
                     for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_the_submission_notebook_serves_the_competition_config_on_the_embedded_model(tmp_path):
    """USE_EMBEDDED_MODEL with the competition's own config (aimo3-h100, sized for an H100):
    the engine must fit it to SmolLM2 on CPU, warm up, and serve a reference.csv (three
    columns, as Kaggle's gateway sends them) with answers from the model, not fallbacks
    for a model that never loaded; the model writes in its own format (code_close, answers
    from code output). Only sizes are overridden, to keep the test short."""
    ids = ["a1", "b2"]
    pl.DataFrame({"id": ids, "problem": ["What is 2 + 3?", "What is 7 * 6?"], "answer": [5, 42]}).write_csv(
        tmp_path / "reference.csv")
    nb = execute("aimo_submission.ipynb", {
        "COMPETITION": "aimo3", "MODEL": str(tmp_path / "no-such-model"), "USE_EMBEDDED_MODEL": True,
        "KIT_SOURCE": str(REPO), "WHEELS": str(tmp_path / "no-wheels"), "CONFIG": "",
        "OVERRIDES": SMALL | {"num_samples": 4, "problem_time_s": 60}, "TEST_CSV": str(tmp_path / "reference.csv"),
        "TIME_LIMIT_S": 900.0, "NUM_PROBLEMS": 2, "LOG_PATH": str(tmp_path / "bank.jsonl"),
    }, tmp_path)
    submission = pl.read_parquet(tmp_path / "submission.parquet")
    assert sorted(submission["id"].to_list()) == ids
    assert all(0 <= a <= 99999 for a in submission["answer"].to_list())
    log = [json.loads(line) for line in (tmp_path / "bank.jsonl").read_text().splitlines()]
    assert [r["id"] for r in log] == submission["id"].to_list()
    assert [r["detail"] for r in log if r["detail"] == "no model" or r["detail"].startswith("error")] == []
    # Real answers: the model, in its own format, voted on at least one problem.
    assert not all(r["fallback"] for r in log)
    assert {r["reference"] for r in log} == {"5", "42"}
    assert all(r["used_s"] <= r["allowance_s"] + 10 for r in log)
    text = outputs_text(nb)
    assert "allowance_s" in text and "2 problems answered" in text and "/2 against the reference answers" in text


def test_the_validation_notebook_scores_a_split_and_shows_the_plots(tmp_path):
    out = tmp_path / "run"
    nb = execute("validate.ipynb", {"SPLIT": "gsm8k", "CONFIG": "cpu-smol", "LIMIT": 2, "OUT": str(out),
                                    "OVERRIDES": SMALL, "KIT_ROOT": str(REPO)}, tmp_path)
    assert json.loads((out / "summary.json").read_text())["problems"] == 2
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 5
    assert "accuracy" in outputs_text(nb)
