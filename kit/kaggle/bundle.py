"""``python -m kit bundle``: everything a Kaggle submission needs offline. Under ``--out`` it writes

* ``wheels/``   a wheelhouse for Kaggle's Python + GPU image (``pip download --only-binary=:all:`` for
  manylinux x86_64 and the given CPython and glibc, from ``kit/requirements-gpu.txt`` by default);
* ``model/``    the model folder's files (hard-linked where possible), unless ``--kaggle-model`` names a
  model Kaggle hosts: the notebook then attaches that (``model_sources``, ``kit/kaggle/model_handle.py``);
* ``kit-src/``  the ``kit`` package as ``kit-src/kit/``;
* ``notebook/`` ``notebooks/aimo_submission.ipynb`` (when it exists) and its ``kernel-metadata.json``;
* ``README.md`` what was written and the ``kaggle`` commands that upload it.

The dataset folders each hold a ``dataset-metadata.json``. ``--config`` names the kit config the
notebook runs (its ``CONFIG``: one of ``kit/configs``, which the bundle ships). ``--push`` runs
``kaggle datasets create`` (``version`` when ``kaggle datasets status`` finds the dataset) on each,
then ``kaggle kernels push``. The Kaggle CLI only ever runs as a program: ``import kaggle``
authenticates and needs ``six``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from kit.config import CONFIG_DIR, load_config, resolve_config_path
from kit.kaggle.competitions import get_competition
from kit.kaggle.model_handle import parse_kaggle_model
from kit.kaggle.offline import REQUIREMENTS as GPU_REQUIREMENTS, dataset_mounts

KIT_DIR = Path(__file__).resolve().parents[1]
NOTEBOOK = KIT_DIR.parent / "notebooks" / "aimo_submission.ipynb"
PLACEHOLDER_OWNER = "YOUR_KAGGLE_USERNAME"
# kaggle-cli docs/kernels.md (2026): the ids `machine_shape` / --accelerator accept. NvidiaTeslaT4 is
# "GPU T4 x2", NvidiaL4X1 one L4; NvidiaTeslaP100 is retired (such sessions run on T4 x2).
KNOWN_MACHINE_SHAPES = ("NvidiaTeslaT4", "NvidiaTeslaA100", "NvidiaL4", "NvidiaL4X1", "NvidiaH100",
                        "NvidiaRtxPro6000", "NvidiaTeslaP100", "TpuV5E8", "TpuV6E8")
# What the Kaggle CLI prints, with exit status 0, when an upload did not happen.
KAGGLE_FAILURE = re.compile(r"(creation|push) error|are not valid|Authentication required", re.IGNORECASE)


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def check_slug(slug: str) -> str:
    """Kaggle's rule for dataset slugs: lowercase letters, digits and single hyphens, 6-50 long."""
    if not (6 <= len(slug) <= 50 and re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug)):
        raise ValueError(f"dataset slug {slug!r} is not 6-50 lowercase letters, digits and hyphens")
    return slug


def kaggle_json_paths() -> list[Path]:
    """Where the Kaggle CLI looks for kaggle.json: $KAGGLE_CONFIG_DIR, else ~/.kaggle or $XDG_CONFIG_HOME/kaggle."""
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        return [Path(os.environ["KAGGLE_CONFIG_DIR"]) / "kaggle.json"]
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [Path.home() / ".kaggle" / "kaggle.json", xdg / "kaggle" / "kaggle.json"]


def kaggle_json() -> dict:
    for path in kaggle_json_paths():
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:  # the CLI looks in several places; most do not exist
            continue
        except (OSError, ValueError) as error:
            print(f"warning: {path} ignored, unreadable or not JSON ({error})")
            continue
        if isinstance(data, dict):
            return data
        print(f"warning: {path} ignored, not a JSON object")
    return {}


def resolve_owner(owner: str | None) -> str:
    """--owner, else $KAGGLE_USERNAME, else kaggle.json's username, else a placeholder (warned)."""
    owner = owner or os.environ.get("KAGGLE_USERNAME") or str(kaggle_json().get("username") or "")
    if not owner:
        print(f"warning: no Kaggle username (--owner, KAGGLE_USERNAME or kaggle.json): the ids say "
              f"{PLACEHOLDER_OWNER}; edit the *-metadata.json files before uploading")
        return PLACEHOLDER_OWNER
    if not re.fullmatch(r"[A-Za-z0-9_-]+", owner):
        raise ValueError(f"Kaggle username {owner!r} may only hold letters, digits, '-' and '_'")
    return owner


def find_credentials() -> str | None:
    """Which of the credentials the Kaggle CLI reads are there (None: none)."""
    if os.environ.get("KAGGLE_API_TOKEN"):
        return "KAGGLE_API_TOKEN"
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return "KAGGLE_USERNAME + KAGGLE_KEY"
    if {"username", "key"} <= kaggle_json().keys():
        return "kaggle.json"
    for name in ("access_token", "access_token.txt", "credentials.json"):  # token file; `kaggle auth login`
        if (Path.home() / ".kaggle" / name).is_file():
            return f"~/.kaggle/{name}"
    return None


def check_push_ready(owner: str, notebook: Path) -> None:
    """Raise ValueError listing everything --push lacks, before any work is done."""
    missing = []
    if shutil.which("kaggle") is None:
        missing.append("the `kaggle` executable on PATH: pip install kaggle six "
                       "(`import kaggle` needs six, which kaggle does not declare)")
    if find_credentials() is None:
        missing.append("Kaggle credentials: set KAGGLE_USERNAME and KAGGLE_KEY, or KAGGLE_API_TOKEN, or write "
                       f"kaggle.json to {' or '.join(str(p) for p in kaggle_json_paths())}")
    if owner == PLACEHOLDER_OWNER:
        missing.append("a Kaggle username for the dataset ids: --owner, KAGGLE_USERNAME or kaggle.json")
    if not notebook.is_file():
        missing.append(f"the notebook {notebook}, which `kaggle kernels push` uploads")
    if missing:
        raise ValueError("--push needs:\n  - " + "\n  - ".join(missing))


def validate_model_dir(path: Path) -> Path:
    if not path.is_dir():
        raise ValueError(f"model folder {path} does not exist (pass a Hugging Face model folder with --model)")
    missing = [] if (path / "config.json").is_file() else ["config.json"]
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        missing.append("weights (*.safetensors or *.bin)")
    if missing:
        raise ValueError(f"model folder {path} has no {' and no '.join(missing)}")
    return path


def dataset_metadata(owner: str, slug: str, title: str, license_name: str) -> dict:
    """dataset-metadata.json as `kaggle datasets create/version` reads it."""
    if not 6 <= len(title) <= 50:
        raise ValueError(f"dataset title {title!r} is not 6-50 characters long")
    return {"title": title, "id": f"{owner}/{check_slug(slug)}", "licenses": [{"name": license_name}]}


def model_license(model_dir: Path) -> str:
    """The model card's licence where Kaggle has a name for it, else "other"."""
    card = (model_dir / "README.md").read_text(errors="replace")[:4000] if (model_dir / "README.md").is_file() else ""
    found = re.search(r"^license:\s*['\"]?([\w.-]+)", card, re.MULTILINE)
    kaggle_names = {"apache-2.0": "apache-2.0", "cc-by-4.0": "CC-BY-4.0", "cc-by-sa-4.0": "CC-BY-SA-4.0",
                    "cc-by-nc-4.0": "CC-BY-NC-4.0", "cc0-1.0": "CC0-1.0", "gpl-3.0": "GPL-3.0"}
    return kaggle_names.get(found.group(1).lower(), "other") if found else "other"


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)  # same filesystem: no second copy of multi-GB weights
    except OSError:
        shutil.copy2(src, dst)


def copy_tree(src: Path, dst: Path) -> None:
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, copy_function=_link_or_copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))


def write_json(path: Path, data: dict) -> None:
    path.unlink(missing_ok=True)  # never write through a hard link into the source folder
    path.write_text(json.dumps(data, indent=2) + "\n")


def human_size(folder: Path) -> str:
    size, units = float(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())), ["B", "KiB", "MiB", "GiB"]
    while size >= 1024 and len(units) > 1:
        size, units = size / 1024, units[1:]
    return f"{size:.1f} {units[0]}"


def run(cmd: list[str], tail: int = 20) -> tuple[int, str]:
    """Run a command, echoing its output line by line; (exit status, its last lines)."""
    last: deque[str] = deque(maxlen=tail)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    for line in proc.stdout:  # type: ignore[union-attr]
        if line.strip():
            last.append(line.rstrip())
            print(f"    {line.rstrip()}", flush=True)
    return proc.wait(), "\n".join(last)


def pip_download_command(dest: Path, requirements: Path, python_version: str, glibc: str) -> list[str]:
    if not requirements.is_file():
        raise FileNotFoundError(f"requirements file {requirements} does not exist")
    if not re.fullmatch(r"3\.\d+", python_version):
        raise ValueError(f"--python-version {python_version!r} is not like 3.11")
    found = re.fullmatch(r"2\.(\d+)", glibc)
    if not found or int(found.group(1)) < 17:
        raise ValueError(f"--glibc {glibc!r} is not like 2.35 (2.17 or later)")
    # pip does not widen manylinux_2_X to older glibcs by itself: name every one.
    tags = [f"manylinux_2_{m}_x86_64" for m in range(int(found.group(1)), 16, -1)] + ["manylinux2014_x86_64"]
    return [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--progress-bar", "off",
            *[arg for tag in tags for arg in ("--platform", tag)], "--python-version", python_version,
            "--implementation", "cp", "--abi", "cp" + python_version.replace(".", ""),
            "-d", str(dest), "-r", str(requirements)]


def download_wheels(cmd: list[str], dest: Path) -> None:
    print(f"  {' '.join(cmd)}")
    status, tail = run(cmd)
    if status != 0:
        raise ValueError(f"pip download failed (exit {status}); its last lines:\n{tail}")
    # A CPU build (torch-2.13.0+cpu) satisfies torch==2.13.0 and outranks the CUDA one; it can only come
    # from a find-links or index in pip's own configuration (`pip config list`, PIP_FIND_LINKS).
    cpu = sorted(p.name for p in dest.glob("*.whl") if "+cpu" in p.name.split("-")[1])
    for name in cpu:
        (dest / name).unlink()
    if cpu:
        raise ValueError(f"pip took CPU-only builds {cpu} (removed from {dest}) from a find-links or index in its "
                         "configuration: run again with --pip-arg=--isolated, which ignores pip's configuration")


def kaggle_push(folders: list[Path], notebook_dir: Path, message: str) -> None:
    """Upload each dataset folder (create, or a new version where it exists), then the notebook."""
    for folder in folders:
        ref = json.loads((folder / "dataset-metadata.json").read_text())["id"]
        if run(["kaggle", "datasets", "status", ref])[0] == 0:
            kaggle(["kaggle", "datasets", "version", "-p", str(folder), "-m", message, "--dir-mode", "zip"])
        else:
            kaggle(["kaggle", "datasets", "create", "-p", str(folder), "--dir-mode", "zip"])
    kaggle(["kaggle", "kernels", "push", "-p", str(notebook_dir)])


def kaggle(cmd: list[str]) -> None:
    print(f"  {' '.join(cmd)}")
    status, tail = run(cmd)
    if status != 0 or KAGGLE_FAILURE.search(tail):
        raise ValueError(f"`{' '.join(cmd[:3])}` failed (exit {status}):\n{tail}")


def build_bundle(competition: str = "aimo3", model: str = "", out: str = "dist", owner: str | None = None,
                 push: bool = False, wheels: bool = True, python_version: str = "3.11", glibc: str = "2.35",
                 requirements: str | None = None, pip_args: list[str] | None = None,
                 notebook: Path = NOTEBOOK, kaggle_model: str = "", config: str = "") -> dict:
    """Write the bundle under ``out`` (and upload it with ``push``); returns the ids written.
    ``model`` is a folder to upload as a dataset (default: the embedded model); ``kaggle_model``
    instead names a model Kaggle hosts, which the notebook attaches."""
    from kit.embedded_model import resolve_model_path

    spec = get_competition(competition)
    if model and kaggle_model:
        raise ValueError("--model and --kaggle-model: give one (a folder to upload, or a model Kaggle hosts)")
    hosted, hosted_warning = parse_kaggle_model(kaggle_model) if kaggle_model else (None, None)
    model_dir = None if hosted else validate_model_dir(Path(model).expanduser() if model else resolve_model_path(""))
    config_name = bundled_config(config) if config else ""
    owner = resolve_owner(owner)
    out_dir = Path(out)
    reqs = Path(requirements) if requirements else GPU_REQUIREMENTS  # what the notebook installs
    pip_cmd = pip_download_command(out_dir / "wheels", reqs, python_version, glibc) + list(pip_args or []) \
        if wheels else []
    if push:
        check_push_ready(owner, notebook)
    if spec.machine_shape not in KNOWN_MACHINE_SHAPES:
        print(f"warning: machine_shape {spec.machine_shape!r} of {competition} is not one of the "
              f"accelerator ids the Kaggle CLI documents: {list(KNOWN_MACHINE_SHAPES)}")
    if hosted_warning:
        print(f"warning: {hosted_warning}")
    datasets = {"wheels": dataset_metadata(owner, "aimo-kit-wheels", "AIMO kit wheels", "other")}
    if model_dir is not None:
        name = model_dir.resolve().name
        datasets["model"] = dataset_metadata(owner, f"aimo-kit-model-{slugify(name)}"[:50].strip("-"),
                                             f"AIMO kit model {name}"[:50], model_license(model_dir))
    datasets["kit-src"] = dataset_metadata(owner, "aimo-kit-src", "AIMO kit source", "apache-2.0")
    written: list[str] = []

    def done(folder: Path, what: str) -> None:
        written.append(f"| `{folder.name}/` | {what} | {human_size(folder)} |")
        print(f"wrote {folder} ({what}, {human_size(folder)})")

    wheel_dir = out_dir / "wheels"
    wheel_dir.mkdir(parents=True, exist_ok=True)
    if wheels:
        print(f"downloading wheels for CPython {python_version}, glibc {glibc}, x86_64 ...")
        download_wheels(pip_cmd, wheel_dir)
    write_json(wheel_dir / "dataset-metadata.json", datasets["wheels"])
    done(wheel_dir, f"{datasets['wheels']['id']}, {len(list(wheel_dir.glob('*.whl')))} wheels")

    if model_dir is None:
        shutil.rmtree(out_dir / "model", ignore_errors=True)  # an earlier bundle's copy: not part of this one
        written.append(f"| (none) | Kaggle model `{hosted.source}`, attached by the notebook | on Kaggle |")
    else:
        print(f"copying the model folder {model_dir} ...")
        copy_tree(model_dir, out_dir / "model")
        write_json(out_dir / "model" / "dataset-metadata.json", datasets["model"])
        done(out_dir / "model", datasets["model"]["id"])

    src_dir = out_dir / "kit-src"
    shutil.rmtree(src_dir, ignore_errors=True)
    copy_tree(KIT_DIR, src_dir / "kit")
    write_json(src_dir / "dataset-metadata.json", datasets["kit-src"])
    done(src_dir, datasets["kit-src"]["id"])

    nb_dir = out_dir / "notebook"
    shutil.rmtree(nb_dir, ignore_errors=True)
    nb_dir.mkdir()
    title = f"AIMO kit {competition} submission"  # Kaggle derives the kernel slug from the title
    kernel = {
        "id": f"{owner}/{slugify(title)}", "title": title, "code_file": notebook.name, "language": "python",
        "kernel_type": "notebook", "is_private": True, "enable_gpu": True, "enable_tpu": False,
        "enable_internet": False, "dataset_sources": [d["id"] for d in datasets.values()],
        "competition_sources": [spec.kaggle_slug], "kernel_sources": [],
        "model_sources": [hosted.source] if hosted else [], "machine_shape": spec.machine_shape,
    }
    write_json(nb_dir / "kernel-metadata.json", kernel)
    if notebook.is_file():
        # Each input where Kaggle may mount it, the 2026 layout first (kit/kaggle/offline.py).
        mounts = {k: list(dataset_mounts(d["id"])) for k, d in datasets.items()}
        configure_notebook(notebook, nb_dir / notebook.name, {
            "COMPETITION": competition, "MODEL": list(hosted.mounts) if hosted else mounts["model"],
            "KIT_SOURCE": mounts["kit-src"], "WHEELS": mounts["wheels"], "CONFIG": config_name})
    else:
        print(f"warning: {notebook} does not exist yet: notebook/ holds only kernel-metadata.json")
    done(nb_dir, kernel["id"])

    write_readme(out_dir, written, datasets, kernel)
    print(f"wrote {out_dir / 'README.md'}")
    if push:
        if not wheels:
            print("--no-wheels: the wheels dataset is not uploaded (the one on Kaggle stays as it is)")
        folders = [out_dir / k for k in datasets if wheels or k != "wheels"]
        kaggle_push(folders, nb_dir, f"python -m kit bundle, {time.strftime('%Y-%m-%d %H:%M')}")
    return {"datasets": {k: d["id"] for k, d in datasets.items()}, "kernel": kernel["id"],
            "model_sources": kernel["model_sources"], "out": str(out_dir)}


def bundled_config(name: str) -> str:
    """``name`` as the notebook's ``CONFIG``: a config of kit/configs (the bundle ships those, no other
    file), checked to load now rather than on Kaggle."""
    path = resolve_config_path(name)  # FileNotFoundError listing the known names
    if path.resolve().parent != CONFIG_DIR:
        raise ValueError(f"--config {name!r}: the notebook loads configs from kit/configs only (the bundle "
                         f"ships those); copy {path} there")
    load_config(path.stem)
    return path.stem


def configure_notebook(src: Path, dst: Path, values: dict[str, str | list[str]]) -> None:
    """Copy the notebook with ``NAME = ...`` lines of its ``parameters`` cell set to ``values``
    (as Python literals, comments kept), so it finds the datasets this bundle names."""
    nb = json.loads(src.read_text())
    cell = next((c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        raise ValueError(f"{src}: no cell tagged 'parameters' to set {sorted(values)} in")
    source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    for name, value in values.items():
        source, count = re.subn(rf"^{name} = [^#\n]*?(\s*#.*)?$", lambda m: f"{name} = {value!r}{m.group(1) or ''}",
                                source, count=1, flags=re.MULTILINE)
        if not count:
            raise ValueError(f"{src}: the parameters cell has no line '{name} = ...'")
    cell["source"] = source
    dst.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def write_readme(out_dir: Path, written: list[str], datasets: dict, kernel: dict) -> None:
    create = "\n".join(f"kaggle datasets create -p {k} --dir-mode zip" for k in datasets)
    hosted = "".join(f", the Kaggle model `{m}`" for m in kernel["model_sources"])
    (out_dir / "README.md").write_text(f"""# Kaggle bundle (`python -m kit bundle`)

| folder | what | size |
|---|---|---|
{chr(10).join(written)}

The notebook `{kernel["id"]}` runs on `{kernel["machine_shape"]}` without internet, with the
{len(datasets)} datasets{hosted} and the competition `{kernel["competition_sources"][0]}`
attached.
Upload from this folder (`pip install kaggle six`; credentials in ~/.kaggle/kaggle.json, or
KAGGLE_USERNAME + KAGGLE_KEY, or KAGGLE_API_TOKEN):

```bash
{create}
kaggle kernels push -p notebook
```

For a dataset that exists already (`kaggle datasets status OWNER/SLUG`), upload a new version instead:
`kaggle datasets version -p FOLDER -m "what changed" --dir-mode zip`. `python -m kit bundle ... --push`
does all this, choosing create or version for each dataset. Let the datasets finish processing
(`kaggle datasets status`) before the notebook runs.

Kaggle mounts inputs in one of two layouts: 2026 notebooks see `/kaggle/input/datasets/OWNER/SLUG`,
`/kaggle/input/models/OWNER/MODEL/FRAMEWORK/VARIATION/VERSION` and `/kaggle/input/competitions/SLUG`,
older ones `/kaggle/input/SLUG` and `/kaggle/input/MODEL/FRAMEWORK/VARIATION/VERSION`. The notebook's
parameters list both paths of each input; it takes the first that exists, and stops naming both
(and the fix: attach it) when neither does.
""")
