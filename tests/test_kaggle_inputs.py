"""Where a Kaggle notebook finds its inputs: the two /kaggle/input layouts (kit/kaggle/offline.py),
on tmp folders laid out each way: the resolver, the competition's data (test.csv and
kaggle_evaluation/ under serve()), the model folder, and the notebook's bootstrap cell, which
finds the kit before it is importable."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import polars as pl
import pytest

from kit.kaggle import offline
from kit.kaggle.bundle import build_bundle
from kit.kaggle.competitions import COMPETITIONS, get_competition
from kit.kaggle.model_handle import parse_kaggle_model
from kit.kaggle.offline import (InputNotFoundError, competition_mounts, dataset_mounts, find_input, install_wheels,
                                model_mounts, resolve_input)
from kit.kaggle.submission import choose_model, competition_test_csv, serve

REPO = Path(__file__).resolve().parent.parent
AIMO3 = "ai-mathematical-olympiad-progress-prize-3"
GPT_OSS = "openai/gpt-oss-120b/transformers/default/1"


@pytest.fixture
def kaggle_input(tmp_path, monkeypatch):
    """An empty /kaggle/input in tmp, in place of the real one for every path the kit builds."""
    root = tmp_path / "input"
    root.mkdir()
    monkeypatch.setattr(offline, "KAGGLE_INPUT", str(root))
    return root


def lay_out(paths: list[str], layouts: str) -> list[str]:
    """Create the (new, old) folders that ``layouts`` names: 'new', 'old', 'both' or 'none'."""
    chosen = {"new": paths[:1], "old": paths[1:], "both": paths, "none": []}[layouts]
    for path in chosen:
        Path(path).mkdir(parents=True)
    return chosen


# --- the paths of each layout --------------------------------------------------------------

def test_each_kind_of_input_has_its_2026_path_first_then_the_older_one():
    assert dataset_mounts("tester/aimo-kit-src") == ("/kaggle/input/datasets/tester/aimo-kit-src",
                                                     "/kaggle/input/aimo-kit-src")
    assert model_mounts(GPT_OSS) == (f"/kaggle/input/models/{GPT_OSS}",
                                     "/kaggle/input/gpt-oss-120b/transformers/default/1")
    assert competition_mounts(AIMO3) == (f"/kaggle/input/competitions/{AIMO3}", f"/kaggle/input/{AIMO3}")
    assert parse_kaggle_model(GPT_OSS)[0].mounts == model_mounts(GPT_OSS)


@pytest.mark.parametrize("name", sorted(COMPETITIONS))
def test_the_competitions_data_and_test_csv_are_looked_for_in_both_layouts(name):
    slug = get_competition(name).kaggle_slug
    assert get_competition(name).data_dirs == (f"/kaggle/input/competitions/{slug}", f"/kaggle/input/{slug}")
    assert get_competition(name).test_csvs == (f"/kaggle/input/competitions/{slug}/test.csv",
                                               f"/kaggle/input/{slug}/test.csv")


@pytest.mark.parametrize("bad", ["tester", "tester/", "a/b/c"])
def test_a_malformed_dataset_id_is_named(bad):
    with pytest.raises(ValueError, match=rf"dataset {bad!r} is not OWNER/SLUG"):
        dataset_mounts(bad)


# --- the resolver ---------------------------------------------------------------------------

@pytest.mark.parametrize("mounts", [dataset_mounts, competition_mounts, model_mounts])
@pytest.mark.parametrize("layouts, expected", [("new", 0), ("old", 1), ("both", 0)])
def test_the_resolver_takes_the_2026_path_where_it_exists_else_the_older(kaggle_input, mounts, layouts, expected):
    ref = {dataset_mounts: "tester/aimo-kit-src", competition_mounts: AIMO3, model_mounts: GPT_OSS}[mounts]
    paths = list(mounts(ref))
    assert all(p.startswith(str(kaggle_input)) for p in paths)
    lay_out(paths, layouts)
    assert resolve_input(paths, "the input", "attach it") == Path(paths[expected])


def test_neither_layout_raises_naming_both_paths_and_the_fix(kaggle_input):
    new, old = dataset_mounts("tester/aimo-kit-src")
    with pytest.raises(InputNotFoundError) as err:
        resolve_input([new, old], "the kit's source", "attach the dataset tester/aimo-kit-src")
    assert str(err.value) == (f"the kit's source not found at {new} or {old}; attach the dataset tester/aimo-kit-src")
    assert isinstance(err.value, FileNotFoundError)


def test_one_path_is_a_list_of_one_and_an_empty_one_is_no_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # "" would otherwise be the working directory, which exists
    assert find_input(str(tmp_path)) == tmp_path
    assert find_input("") is None and find_input([]) is None
    with pytest.raises(InputNotFoundError, match=r"model folder not found at no path \(none was given\)"):
        resolve_input("", "model folder", "attach it")


def test_wheels_install_from_whichever_layout_holds_them(kaggle_input, tmp_path, capsys):
    new, old = dataset_mounts("tester/aimo-kit-wheels")
    assert install_wheels([new, old]) is False
    assert f"no wheelhouse at {new} or {old}" in capsys.readouterr().out
    Path(old).mkdir()
    wheel = tmp_path / "reqs.txt"
    wheel.write_text("")  # nothing to install: pip runs, offline, and succeeds
    assert install_wheels([new, old], requirements=wheel) is True
    assert f"installed reqs.txt from {old}" in capsys.readouterr().out


# --- the model folder --------------------------------------------------------------------------

@pytest.mark.parametrize("layouts, expected", [("new", 0), ("old", 1), ("both", 0)])
def test_the_model_folder_is_found_in_either_layout(kaggle_input, layouts, expected):
    paths = list(model_mounts(GPT_OSS))
    lay_out(paths, layouts)
    assert choose_model(paths, use_embedded_model=False) == paths[expected]


def test_a_model_in_neither_layout_stops_naming_both_and_the_fix(kaggle_input):
    new, old = model_mounts(GPT_OSS)
    with pytest.raises(InputNotFoundError, match=rf"model folder not found at {new} or {old}; attach the model.*"
                                                 "USE_EMBEDDED_MODEL = True"):
        choose_model([new, old], use_embedded_model=False)


# --- the competition's data under serve() -------------------------------------------------------

FAKE_SERVER = '''
calls = []

class AIMO3InferenceServer:
    def __init__(self, predict):
        self.predict = predict

    def serve(self):
        calls.append("serve")

    def run_local_gateway(self, data_paths):
        calls.append(("run_local_gateway", data_paths))
'''


class FakeSubmission:
    """What serve() reads of a Submission: the competition, predict, and the bank's start."""

    def __init__(self, competition):
        self.competition = competition

    def predict_function(self):
        def predict(*columns):
            return pl.DataFrame({"id": [columns[0].item()], "answer": [7]})

        return predict


@pytest.mark.parametrize("mounted_at", [f"competitions/{AIMO3}", AIMO3])  # 2026 layout, older layout
def test_serve_finds_kaggle_evaluation_and_test_csv_in_either_layout(kaggle_input, monkeypatch, mounted_at):
    competition = get_competition("aimo3")
    data_dir = str(kaggle_input / mounted_at)
    Path(data_dir).mkdir(parents=True)
    (Path(data_dir) / "test.csv").write_text("id,problem\na1,What is 1+1?\n")
    package = Path(data_dir) / "kaggle_evaluation"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "aimo_3_inference_server.py").write_text(FAKE_SERVER)
    monkeypatch.setattr(sys, "path", list(sys.path))  # serve() appends the data folder
    monkeypatch.delenv("KAGGLE_IS_COMPETITION_RERUN", raising=False)
    try:
        serve(FakeSubmission(competition))
        calls = sys.modules["kaggle_evaluation.aimo_3_inference_server"].calls
    finally:
        for name in ("kaggle_evaluation.aimo_3_inference_server", "kaggle_evaluation"):
            sys.modules.pop(name, None)
    assert data_dir in sys.path
    assert calls == [("run_local_gateway", (f"{data_dir}/test.csv",))]


def test_a_missing_competition_names_both_test_csv_paths(kaggle_input):
    competition = get_competition("aimo3")
    new, old = competition.test_csvs
    with pytest.raises(InputNotFoundError, match=rf"aimo3's test.csv not found at {new} or {old}; attach the "
                                                 rf"competition {AIMO3} \(competition_sources\) or pass test_csv"):
        competition_test_csv(competition)


def test_the_rerun_serves_without_test_csv(kaggle_input, monkeypatch):
    """Kaggle's server serves the hidden set in the rerun: a missing test.csv must not stop it."""
    competition = get_competition("aimo3")
    package = kaggle_input / "competitions" / AIMO3 / "kaggle_evaluation"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "aimo_3_inference_server.py").write_text(FAKE_SERVER)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("KAGGLE_IS_COMPETITION_RERUN", "1")
    try:
        serve(FakeSubmission(competition))
        calls = sys.modules["kaggle_evaluation.aimo_3_inference_server"].calls
    finally:
        for name in ("kaggle_evaluation.aimo_3_inference_server", "kaggle_evaluation"):
            sys.modules.pop(name, None)
    assert calls == ["serve"]


def test_off_kaggle_the_local_gateway_reads_the_test_csv_it_is_given(kaggle_input, tmp_path):
    """The local rehearsal: nothing mounted, a test.csv passed, the kit's own gateway."""
    csv = tmp_path / "test.csv"
    pl.DataFrame({"id": ["a1", "b2"], "problem": ["p one", "p two"]}).write_csv(csv)
    competition = get_competition("aimo3")

    class Bank:
        started_at = None

    submission = FakeSubmission(competition)
    submission.bank = Bank()
    run = serve(submission, str(csv), out_path=str(tmp_path / "submission.parquet"))
    assert sorted(run.order) == ["a1", "b2"]
    assert pl.read_parquet(tmp_path / "submission.parquet")["answer"].to_list() == [7, 7]


# --- the notebook's bootstrap cell, on the paths the bundle writes --------------------------------

@pytest.fixture
def bundled_notebook(tmp_path):
    model = tmp_path / "Tiny-Model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"0")
    notebook = tmp_path / "nb" / "aimo_submission.ipynb"
    notebook.parent.mkdir()
    shutil.copy(REPO / "notebooks" / "aimo_submission.ipynb", notebook)
    out = tmp_path / "dist"
    build_bundle(model=str(model), owner="tester", wheels=False, out=str(out), notebook=notebook)
    return json.loads((out / "notebook" / notebook.name).read_text())


def run_bootstrap(nb: dict, kaggle_input: Path) -> dict:
    """The notebook's parameters and bootstrap cells, with /kaggle/input moved to ``kaggle_input``."""
    at = next(i for i, c in enumerate(nb["cells"]) if "parameters" in c["metadata"].get("tags", []))
    source = ["".join(c["source"]) for c in nb["cells"][at:at + 2]]
    scope: dict = {}
    for cell in source:
        exec(cell.replace("/kaggle/input", str(kaggle_input)), scope)
    return scope


def kit_sources(root: Path) -> list[str]:
    """Where the bootstrap cell should look for the bundle's kit-src dataset, /kaggle/input moved to ``root``."""
    return [f"{root}/datasets/tester/aimo-kit-src", f"{root}/aimo-kit-src"]


@pytest.fixture
def working_dir(tmp_path, monkeypatch):
    """A Kaggle-like working directory: its .. holds no kit/ (off Kaggle it is the checkout's)."""
    (tmp_path / "working").mkdir()
    monkeypatch.chdir(tmp_path / "working")
    monkeypatch.setattr(sys, "path", list(sys.path))  # the cell inserts the kit's folder
    return tmp_path / "working"


@pytest.mark.parametrize("layouts, expected", [("new", 0), ("old", 1), ("both", 0)])
def test_the_bootstrap_cell_finds_the_kit_in_either_layout(bundled_notebook, tmp_path, working_dir, layouts, expected):
    sources = kit_sources(tmp_path / "input")
    for source in lay_out(sources, layouts):
        (Path(source) / "kit").mkdir()
    run_bootstrap(bundled_notebook, tmp_path / "input")
    assert sys.path[0] == sources[expected]


def test_the_bootstrap_cell_stops_naming_both_kit_paths(bundled_notebook, tmp_path, working_dir):
    new, old = kit_sources(tmp_path / "input")
    with pytest.raises(FileNotFoundError, match=rf"kit/\) not found at {new} or {old}; attach the kit-src dataset"):
        run_bootstrap(bundled_notebook, tmp_path / "input")


def test_off_kaggle_the_bootstrap_cell_uses_the_checkout(bundled_notebook, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO / "notebooks")
    monkeypatch.setattr(sys, "path", list(sys.path))
    run_bootstrap(bundled_notebook, tmp_path / "input")
    assert sys.path[0] == str(REPO) and os.path.isdir(os.path.join(sys.path[0], "kit"))
