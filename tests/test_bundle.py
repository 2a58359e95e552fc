"""`python -m kit bundle`: the Kaggle datasets and notebook metadata it writes, the wheel
download, and how --push drives the kaggle CLI (a fake one here: no network)."""

import json
import os
import re
import shutil
import zipfile
from pathlib import Path

import pytest

from kit.__main__ import main
from kit.kaggle.bundle import build_bundle, check_slug
from kit.kaggle.competitions import COMPETITIONS, get_competition

SLUG = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
KERNEL_FIELDS = {
    "id": str, "title": str, "code_file": str, "language": str, "kernel_type": str, "is_private": bool,
    "enable_gpu": bool, "enable_tpu": bool, "enable_internet": bool, "dataset_sources": list,
    "competition_sources": list, "kernel_sources": list, "model_sources": list, "machine_shape": str,
}
DATASETS = ("wheels", "model", "kit-src")


@pytest.fixture
def model_dir(tmp_path):
    path = tmp_path / "Tiny_Math-Model-1B"
    path.mkdir()
    (path / "config.json").write_text('{"model_type": "llama"}')
    (path / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    (path / "tokenizer.json").write_text("{}")
    return path


@pytest.fixture
def notebook(tmp_path):
    path = tmp_path / "nb" / "aimo_submission.ipynb"
    path.parent.mkdir()
    shutil.copy(Path(__file__).resolve().parent.parent / "notebooks" / "aimo_submission.ipynb", path)
    return path


@pytest.fixture
def no_kaggle_env(tmp_path, monkeypatch):
    """No credentials anywhere the Kaggle CLI looks, and HOME in tmp."""
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "kaggle-config"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


def bundle(tmp_path, model_dir, **kw):
    kw = {"owner": "tester", "wheels": False, "out": str(tmp_path / "dist"), **kw}
    build_bundle(model=str(model_dir), **kw)
    return tmp_path / "dist"


def load(path):
    return json.loads(path.read_text())


def test_dataset_metadata_has_exactly_the_fields_the_kaggle_cli_reads(tmp_path, model_dir):
    out = bundle(tmp_path, model_dir)
    for name in DATASETS:
        meta = load(out / name / "dataset-metadata.json")
        assert set(meta) == {"title", "id", "licenses"}
        assert isinstance(meta["title"], str) and 6 <= len(meta["title"]) <= 50
        assert len(meta["licenses"]) == 1 and isinstance(meta["licenses"][0]["name"], str)
        owner, slug = meta["id"].split("/")
        assert owner == "tester" and SLUG.fullmatch(slug) and 6 <= len(slug) <= 50


def test_kernel_metadata_has_exactly_the_fields_and_types_the_kaggle_cli_reads(tmp_path, model_dir, notebook):
    out = bundle(tmp_path, model_dir, notebook=notebook)
    meta = load(out / "notebook" / "kernel-metadata.json")
    assert {k: type(v) for k, v in meta.items()} == KERNEL_FIELDS
    assert (meta["language"], meta["kernel_type"]) == ("python", "notebook")
    assert (out / "notebook" / meta["code_file"]).is_file()
    owner, slug = meta["id"].split("/")
    assert owner == "tester" and slug == re.sub(r"[^a-z0-9]+", "-", meta["title"].lower())


@pytest.mark.parametrize("name", sorted(COMPETITIONS))
def test_kernel_runs_offline_on_the_competition_and_its_hardware(tmp_path, model_dir, name):
    meta = load(bundle(tmp_path, model_dir, competition=name) / "notebook" / "kernel-metadata.json")
    competition = get_competition(name)
    assert meta["competition_sources"] == [competition.kaggle_slug]
    assert meta["machine_shape"] == competition.machine_shape
    assert meta["enable_internet"] is False and meta["enable_gpu"] is True and meta["is_private"] is True


def test_kernel_mounts_the_three_datasets(tmp_path, model_dir):
    out = bundle(tmp_path, model_dir)
    ids = [load(out / name / "dataset-metadata.json")["id"] for name in DATASETS]
    assert ids == ["tester/aimo-kit-wheels", "tester/aimo-kit-model-tiny-math-model-1b", "tester/aimo-kit-src"]
    assert load(out / "notebook" / "kernel-metadata.json")["dataset_sources"] == ids


def test_kit_source_is_copied_without_caches(tmp_path, model_dir):
    kit = bundle(tmp_path, model_dir) / "kit-src" / "kit"
    assert (kit / "__init__.py").is_file() and (kit / "solver.py").is_file()
    assert (kit / "requirements-gpu.txt").is_file()
    assert {p.name for p in (kit / "configs").glob("*.yaml")} >= {"aimo3-h100.yaml", "cpu-smol.yaml"}
    assert not list(kit.rglob("__pycache__")) and not list(kit.rglob("*.pyc"))


def test_model_files_are_copied_and_the_source_folder_is_left_alone(tmp_path, model_dir):
    (model_dir / "dataset-metadata.json").write_text("theirs")  # written through a hard link, it would change
    model = bundle(tmp_path, model_dir) / "model"
    assert {p.name for p in model.iterdir()} == {"config.json", "model.safetensors", "tokenizer.json",
                                                 "dataset-metadata.json"}
    assert (model / "model.safetensors").read_bytes() == (model_dir / "model.safetensors").read_bytes()
    assert (model_dir / "dataset-metadata.json").read_text() == "theirs"


def test_model_folder_without_config_is_refused(tmp_path, model_dir):
    (model_dir / "config.json").unlink()
    with pytest.raises(ValueError, match=r"Tiny_Math-Model-1B has no config\.json"):
        bundle(tmp_path, model_dir)


def test_model_folder_without_weights_is_refused(tmp_path, model_dir):
    (model_dir / "model.safetensors").unlink()
    with pytest.raises(ValueError, match=r"Tiny_Math-Model-1B has no weights \(\*\.safetensors or \*\.bin\)"):
        bundle(tmp_path, model_dir)


def test_unknown_competition_names_the_known_ones(tmp_path, model_dir):
    with pytest.raises(ValueError, match=r"'aimo9' is not one of \['aimo1', 'aimo2', 'aimo3'\]"):
        bundle(tmp_path, model_dir, competition="aimo9")


def test_slugs_follow_kaggles_rule_and_long_model_names_are_cut_to_fit(tmp_path):
    for bad in ("abc", "Upper-case", "under_score", "a" * 51, "double--hyphen"):
        with pytest.raises(ValueError, match="6-50 lowercase"):
            check_slug(bad)
    model = tmp_path / ("Very-Long-Model-Name-" * 4)
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "pytorch_model.bin").write_bytes(b"0")
    meta = load(bundle(tmp_path, model) / "model" / "dataset-metadata.json")
    slug = meta["id"].split("/")[1]
    assert check_slug(slug) and slug.startswith("aimo-kit-model-very-long") and len(meta["title"]) <= 50


def test_owner_comes_from_kaggle_json(tmp_path, model_dir, no_kaggle_env):
    config = Path(os.environ["KAGGLE_CONFIG_DIR"])
    config.mkdir()
    (config / "kaggle.json").write_text('{"username": "jsonuser", "key": "k"}')
    out = bundle(tmp_path, model_dir, owner=None)
    assert load(out / "kit-src" / "dataset-metadata.json")["id"] == "jsonuser/aimo-kit-src"


def test_missing_owner_gives_a_placeholder_and_a_warning(tmp_path, model_dir, no_kaggle_env, capsys):
    out = bundle(tmp_path, model_dir, owner=None)
    assert load(out / "kit-src" / "dataset-metadata.json")["id"] == "YOUR_KAGGLE_USERNAME/aimo-kit-src"
    assert "warning: no Kaggle username" in capsys.readouterr().out


def make_wheel(folder: Path, name="tinypkg", version="0.1") -> Path:
    """A minimal pure-Python wheel that pip accepts for any platform."""
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": "",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{f},,\n" for f in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(path, "w") as z:
        for f, text in files.items():
            z.writestr(f, text)
    return path


def test_wheels_are_downloaded_into_the_wheels_dataset(tmp_path, model_dir):
    local = tmp_path / "local-wheels"
    local.mkdir()
    make_wheel(local)
    reqs = tmp_path / "reqs.txt"
    reqs.write_text("tinypkg==0.1\n")
    out = bundle(tmp_path, model_dir, wheels=True, requirements=str(reqs),
                 pip_args=["--no-index", f"--find-links={local}"])
    assert (out / "wheels" / "tinypkg-0.1-py3-none-any.whl").is_file()
    assert (out / "wheels" / "dataset-metadata.json").is_file()


def test_failed_wheel_download_shows_pips_error(tmp_path, model_dir):
    reqs = tmp_path / "reqs.txt"
    reqs.write_text("no-such-package-for-the-kit==9.9\n")
    with pytest.raises(ValueError, match=r"(?s)pip download failed.*no-such-package-for-the-kit"):
        bundle(tmp_path, model_dir, wheels=True, requirements=str(reqs), pip_args=["--no-index"])


def test_cpu_only_builds_from_pips_own_configuration_are_refused(tmp_path, model_dir):
    local = tmp_path / "local-wheels"
    local.mkdir()
    make_wheel(local, version="0.1+cpu")  # as torch-2.13.0+cpu satisfies torch==2.13.0
    reqs = tmp_path / "reqs.txt"
    reqs.write_text("tinypkg==0.1\n")
    with pytest.raises(ValueError, match=r"CPU-only builds.*--pip-arg=--isolated"):
        bundle(tmp_path, model_dir, wheels=True, requirements=str(reqs), pip_args=["--no-index", f"--find-links={local}"])
    assert not list((tmp_path / "dist" / "wheels").glob("*.whl"))


def test_model_licence_is_read_from_the_model_card(tmp_path, model_dir):
    (model_dir / "README.md").write_text("---\nlicense: apache-2.0\nlibrary_name: transformers\n---\n# Model\n")
    meta = load(bundle(tmp_path, model_dir) / "model" / "dataset-metadata.json")
    assert meta["licenses"] == [{"name": "apache-2.0"}]


def test_push_names_the_missing_cli_and_credentials_before_writing(tmp_path, model_dir, notebook, no_kaggle_env,
                                                                   monkeypatch):
    (tmp_path / "empty-bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(ValueError) as info:
        bundle(tmp_path, model_dir, push=True, notebook=notebook)
    message = str(info.value)
    assert "the `kaggle` executable on PATH: pip install kaggle six" in message
    assert "Kaggle credentials: set KAGGLE_USERNAME and KAGGLE_KEY, or KAGGLE_API_TOKEN" in message
    assert not (tmp_path / "dist").exists()


@pytest.fixture
def fake_kaggle(tmp_path, monkeypatch, no_kaggle_env):
    """A `kaggle` on PATH that logs its arguments; `datasets status` exits $FAKE_STATUS (1: no such dataset)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "kaggle"
    script.write_text('#!/bin/sh\necho "$@" >> "$KAGGLE_LOG"\n'
                      'if [ "$1 $2" = "datasets status" ]; then exit "${FAKE_STATUS:-1}"; fi\n'
                      'echo "${FAKE_OUTPUT:-done}"\n')
    script.chmod(0o755)
    log = tmp_path / "kaggle.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("KAGGLE_LOG", str(log))
    monkeypatch.setenv("KAGGLE_USERNAME", "tester")
    monkeypatch.setenv("KAGGLE_KEY", "fake-key")
    return log


def test_push_creates_new_datasets_then_pushes_the_notebook(tmp_path, model_dir, notebook, fake_kaggle):
    out = bundle(tmp_path, model_dir, push=True, notebook=notebook)
    calls = [line for line in fake_kaggle.read_text().splitlines() if "status" not in line]
    assert calls == [f"datasets create -p {out / 'model'} --dir-mode zip",
                     f"datasets create -p {out / 'kit-src'} --dir-mode zip",
                     f"kernels push -p {out / 'notebook'}"]  # no wheels downloaded: that dataset is left as it is


def test_push_versions_datasets_that_exist(tmp_path, model_dir, notebook, fake_kaggle, monkeypatch):
    monkeypatch.setenv("FAKE_STATUS", "0")
    out = bundle(tmp_path, model_dir, push=True, notebook=notebook)
    log = fake_kaggle.read_text().splitlines()
    assert "datasets status tester/aimo-kit-src" in log
    assert any(line.startswith(f"datasets version -p {out / 'kit-src'} -m ") and line.endswith("--dir-mode zip")
               for line in log)
    assert not any("datasets create" in line for line in log)


def test_push_reports_an_upload_the_cli_refused(tmp_path, model_dir, notebook, fake_kaggle, monkeypatch):
    monkeypatch.setenv("FAKE_OUTPUT", "Dataset creation error: The requested slug is already in use")
    with pytest.raises(ValueError, match="kaggle datasets create.*failed"):
        bundle(tmp_path, model_dir, push=True, notebook=notebook)


def test_cli_writes_the_bundle(tmp_path, model_dir):
    out = tmp_path / "dist"
    assert main(["bundle", "--model", str(model_dir), "--out", str(out), "--no-wheels", "--owner", "tester"]) == 0
    assert (out / "notebook" / "kernel-metadata.json").is_file() and (out / "README.md").is_file()
    assert "kaggle kernels push -p notebook" in (out / "README.md").read_text()


def test_cli_bad_model_path_exits_2_with_an_error(tmp_path, capsys):
    code = main(["bundle", "--model", str(tmp_path / "nomodel"), "--out", str(tmp_path / "d"), "--no-wheels"])
    assert code == 2 and "error: model folder" in capsys.readouterr().err


def test_cli_unknown_competition_exits_2_naming_the_known_ones(tmp_path, model_dir, capsys):
    code = main(["bundle", "--competition", "aimo9", "--model", str(model_dir), "--out", str(tmp_path / "d")])
    assert code == 2 and "aimo1" in capsys.readouterr().err


def test_the_bundled_notebook_finds_the_bundles_datasets(tmp_path, model_dir, notebook):
    out = bundle(tmp_path, model_dir, competition="aimo2", notebook=notebook)
    cells = load(out / "notebook" / "aimo_submission.ipynb")["cells"]
    params = next(c for c in cells if "parameters" in c["metadata"].get("tags", []))["source"]
    scope: dict = {}
    exec(params, scope)
    wheels, model, kit_src = load(out / "notebook" / "kernel-metadata.json")["dataset_sources"]
    assert scope["COMPETITION"] == "aimo2"
    # Each dataset at both of Kaggle's layouts, the 2026 one (it names the owner) first.
    for name, ref in (("WHEELS", wheels), ("MODEL", model), ("KIT_SOURCE", kit_src)):
        owner, slug = ref.split("/")
        assert scope[name] == [f"/kaggle/input/datasets/{owner}/{slug}", f"/kaggle/input/{slug}"]
    assert scope["KIT_SOURCE"] == ["/kaggle/input/datasets/tester/aimo-kit-src", "/kaggle/input/aimo-kit-src"]


@pytest.mark.parametrize("content", ["{broken", '["a list"]'])
def test_a_broken_kaggle_json_is_named_not_silently_skipped(tmp_path, model_dir, no_kaggle_env, capsys, content):
    config = Path(os.environ["KAGGLE_CONFIG_DIR"])
    config.mkdir()
    (config / "kaggle.json").write_text(content)
    out = bundle(tmp_path, model_dir, owner=None)
    assert load(out / "kit-src" / "dataset-metadata.json")["id"] == "YOUR_KAGGLE_USERNAME/aimo-kit-src"
    assert f"warning: {config / 'kaggle.json'} ignored" in capsys.readouterr().out


GPT_OSS = "openai/gpt-oss-120b/transformers/default"


def notebook_parameters(out: Path) -> dict:
    cells = load(out / "notebook" / "aimo_submission.ipynb")["cells"]
    scope: dict = {}
    exec(next(c for c in cells if "parameters" in c["metadata"].get("tags", []))["source"], scope)
    return scope


def test_a_kaggle_model_is_attached_as_a_model_source_not_uploaded(tmp_path, notebook):
    out = tmp_path / "dist"
    result = build_bundle(kaggle_model=f"{GPT_OSS}/2", owner="tester", wheels=False, out=str(out), notebook=notebook)
    meta = load(out / "notebook" / "kernel-metadata.json")
    assert meta["model_sources"] == [f"{GPT_OSS}/2"] == result["model_sources"]
    assert meta["dataset_sources"] == ["tester/aimo-kit-wheels", "tester/aimo-kit-src"]
    assert {k: type(v) for k, v in meta.items()} == KERNEL_FIELDS
    assert not (out / "model").exists()
    assert notebook_parameters(out)["MODEL"] == [f"/kaggle/input/models/{GPT_OSS}/2",  # 2026 layout first
                                                 "/kaggle/input/gpt-oss-120b/transformers/default/2"]
    assert notebook_parameters(out)["WHEELS"] == ["/kaggle/input/datasets/tester/aimo-kit-wheels",
                                                  "/kaggle/input/aimo-kit-wheels"]
    readme = (out / "README.md").read_text()
    assert "kaggle datasets create -p model" not in readme and f"Kaggle model `{GPT_OSS}/2`" in readme
    assert "/kaggle/input/models/OWNER/MODEL/FRAMEWORK/VARIATION/VERSION" in readme  # both layouts explained
    assert "/kaggle/input/MODEL/FRAMEWORK/VARIATION/VERSION" in readme


def test_a_kaggle_model_without_a_version_gets_the_first_with_a_warning(tmp_path, capsys):
    out = tmp_path / "dist"
    build_bundle(kaggle_model=GPT_OSS, owner="tester", wheels=False, out=str(out))
    assert load(out / "notebook" / "kernel-metadata.json")["model_sources"] == [f"{GPT_OSS}/1"]
    assert f"warning: --kaggle-model '{GPT_OSS}' names no version: using {GPT_OSS}/1" in capsys.readouterr().out


def test_a_kaggle_model_replaces_the_model_copy_of_an_earlier_bundle(tmp_path, model_dir):
    out = bundle(tmp_path, model_dir)
    assert (out / "model" / "model.safetensors").is_file()
    build_bundle(kaggle_model=GPT_OSS + "/1", owner="tester", wheels=False, out=str(out))
    assert not (out / "model").exists()


@pytest.mark.parametrize("handle", ["openai/gpt-oss-120b", "openai/gpt-oss-120b/transformers/default/1/x",
                                    "openai//transformers/default", "openai/gpt oss/transformers/default",
                                    f"{GPT_OSS}/latest", f"{GPT_OSS}/0", f"/{GPT_OSS}"])
def test_a_bad_kaggle_model_handle_is_named_with_the_expected_form(tmp_path, handle):
    with pytest.raises(ValueError, match=rf"--kaggle-model {re.escape(repr(handle))}: .*e\.g\. {GPT_OSS}/1"):
        build_bundle(kaggle_model=handle, owner="tester", wheels=False, out=str(tmp_path / "dist"))
    assert not (tmp_path / "dist").exists()


def test_model_and_kaggle_model_together_are_refused(tmp_path, model_dir):
    with pytest.raises(ValueError, match="--model and --kaggle-model: give one"):
        bundle(tmp_path, model_dir, kaggle_model=GPT_OSS)


def test_the_notebook_runs_the_config_the_bundle_names(tmp_path, model_dir, notebook):
    out = bundle(tmp_path, model_dir, notebook=notebook, config="aimo3-gptoss120b-h100.yaml")
    assert notebook_parameters(out)["CONFIG"] == "aimo3-gptoss120b-h100"
    assert notebook_parameters(bundle(tmp_path, model_dir, notebook=notebook))["CONFIG"] == ""  # the competition's


def test_a_config_the_bundle_does_not_ship_is_refused(tmp_path, model_dir):
    with pytest.raises(FileNotFoundError, match=r"config 'aimo9-h100' not found .*aimo3-gptoss120b-h100"):
        bundle(tmp_path, model_dir, config="aimo9-h100")
    local = tmp_path / "mine.yaml"
    local.write_text("num_samples: 4\n")
    with pytest.raises(ValueError, match=r"--config .*mine\.yaml.*loads configs from kit/configs only"):
        bundle(tmp_path, model_dir, config=str(local))


def test_cli_bundles_a_kaggle_model_with_a_config(tmp_path):
    out = tmp_path / "dist"
    assert main(["bundle", "--kaggle-model", f"{GPT_OSS}/1", "--config", "aimo3-gptoss120b-h100", "--out", str(out),
                 "--no-wheels", "--owner", "tester"]) == 0
    assert load(out / "notebook" / "kernel-metadata.json")["model_sources"] == [f"{GPT_OSS}/1"]


def test_cli_bad_kaggle_model_exits_2_naming_it(tmp_path, capsys):
    code = main(["bundle", "--kaggle-model", "gpt-oss-120b", "--out", str(tmp_path / "d"), "--no-wheels"])
    assert code == 2 and "error: --kaggle-model 'gpt-oss-120b': expected OWNER/MODEL/FRAMEWORK/VARIATION" in \
        capsys.readouterr().err
