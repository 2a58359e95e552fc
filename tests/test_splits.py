"""Validation splits: the vendored ones load; bad files are refused with file, line, reason."""

import pytest

from eval.splits import SPLITS, load_split

ROWS = {"aime": 90, "amc": 83, "amc23": 40, "math-l4": 744, "math-l5": 719, "math500": 500, "gsm8k": 1319}


@pytest.mark.parametrize("name", sorted(SPLITS))
def test_vendored_split_loads_with_its_row_count(name):
    problems, profile = load_split(name)
    assert len(problems) == ROWS[name]
    assert profile == ("free" if name == "math500" else "integer")
    assert all(p.problem and p.answer for p in problems)


def test_math_levels_keep_level_and_subject():
    problems, _ = load_split("math-l5", limit=3)
    assert len(problems) == 3 and {p.level for p in problems} == {"5"} and all(p.subject for p in problems)


def test_local_files_in_three_formats(tmp_path):
    import pyarrow
    import pyarrow.parquet

    (tmp_path / "s.jsonl").write_text('{"id": "a", "question": "1+1?", "answer": 2}\n')
    (tmp_path / "s.csv").write_text("problem,answer\n1+1?,2\n")
    pyarrow.parquet.write_table(pyarrow.table({"problem": ["1+1?"], "answer": ["2"]}), tmp_path / "s.parquet")
    for suffix in ("jsonl", "csv", "parquet"):
        problems, profile = load_split(str(tmp_path / f"s.{suffix}"))
        assert (problems[0].problem, problems[0].answer, profile) == ("1+1?", "2", "free")


@pytest.mark.parametrize("content, message", [
    ('{"problem": "x", "answer": "1"}\n{"problem": "y"}\n', "s.jsonl:2: no 'answer' column"),
    ('{"problem": "x", "answer": " "}\n', "s.jsonl:1: empty answer"),
    ('{"problem": "x", "answer": "1"}\n{"problem": "y", "answer": \n', "s.jsonl:2: not valid JSON"),
    ('{"answer": "1"}\n', "s.jsonl:1: no 'problem' column"),
])
def test_bad_split_file_is_refused_with_file_line_and_reason(tmp_path, content, message):
    (tmp_path / "s.jsonl").write_text(content)
    with pytest.raises(ValueError, match=message):
        load_split(str(tmp_path / "s.jsonl"))


def test_unknown_split_name_lists_the_known_ones():
    with pytest.raises(FileNotFoundError, match="aime"):
        load_split("aime-2030")


@pytest.mark.parametrize("source, hub", [("AI-MO/NuminaMath-TIR", True), ("AI-MO/NuminaMath-1.5", True),
                                         ("data/missing.jsonl", False), ("./a/b", False), ("a/b/c", False)])
def test_what_counts_as_a_hub_dataset_id(source, hub):
    from eval.splits import is_hub_id

    assert is_hub_id(source) is hub


@pytest.fixture
def hub(monkeypatch):
    """A hub that serves one dataset with a train and a test split (datasets' own classes)."""
    import datasets

    def rows(split, n):
        return datasets.Dataset.from_list([{"problem": f"{split} {i} + {i}?", "answer": str(2 * i),
                                            "solution": f"\\boxed{{{2 * i}}}"} for i in range(n)])

    loaded = datasets.DatasetDict({"train": rows("train", 5), "test": rows("test", 3)})
    monkeypatch.setattr(datasets, "load_dataset", lambda dataset_id: loaded)


def test_splits_and_training_data_load_hub_datasets_alike(hub):
    from train.chats import load_messages

    problems, profile = load_split("owner/NuminaMath-1.5", limit=2)
    assert [p.problem for p in problems] == ["test 0 + 0?", "test 1 + 1?"] and profile == "free"
    rows = load_messages("owner/NuminaMath-1.5", split="train", limit=4, decontaminate=False)
    assert [r["problem"] for r in rows] == [f"train {i} + {i}?" for i in range(4)]


def test_a_missing_hub_split_or_package_is_named(hub, monkeypatch):
    import sys

    from train.chats import load_messages

    with pytest.raises(ValueError, match=r"'owner/name' has no split 'validation' \(splits: \['test', 'train'\]\)"):
        load_messages("owner/name", split="validation", decontaminate=False)
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(ImportError, match="pip install datasets"):
        load_split("owner/name")
