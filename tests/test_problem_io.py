"""Problem files: CSV and JSONL in, clear errors naming file and line."""

import subprocess
import sys

import pytest

from kit.problem_io import read_problems


def test_jsonl_and_csv(tmp_path):
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text('{"id": "a", "problem": "1+1?", "answer": "2"}\n\n{"question": "2+2?"}\n')
    assert [(p.id, p.problem, p.answer) for p in read_problems(jsonl)] == [("a", "1+1?", "2"), ("1", "2+2?", None)]
    csv = tmp_path / "p.csv"
    csv.write_text('id,problem\nx,"What is 3, plus 4?"\n')
    assert read_problems(csv)[0].problem == "What is 3, plus 4?"
    import pyarrow
    import pyarrow.parquet

    parquet = tmp_path / "p.parquet"
    pyarrow.parquet.write_table(pyarrow.table({"id": ["q"], "problem": ["5+5?"], "answer": ["10"]}), parquet)
    assert [(p.id, p.answer) for p in read_problems(parquet)] == [("q", "10")]


@pytest.mark.parametrize("content, message", [
    ('{"id": 1, "problem": "ok"}\n{broken\n', "p.jsonl:2: not valid JSON"),
    ('{"id": 1, "text": "ok"}\n', "p.jsonl:1: no 'problem' column"),
    ('{"id": 1, "problem": "  "}\n', "p.jsonl:1: empty problem"),
    ('{"id": 1, "problem": "a"}\n{"id": 1, "problem": "b"}\n', "duplicate ids"),
    ("\n", "no problems"),
])
def test_bad_files_name_file_line_and_reason(tmp_path, content, message):
    path = tmp_path / "p.jsonl"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        read_problems(path)


def test_missing_file_and_wrong_suffix(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_problems(tmp_path / "none.jsonl")
    (tmp_path / "p.txt").write_text("x")
    with pytest.raises(ValueError, match="expected .jsonl, .csv or .parquet"):
        read_problems(tmp_path / "p.txt")


def test_reading_problem_files_imports_neither_the_solver_nor_the_sandbox():
    """The evaluation splits and the training data read rows through kit.problem_io: reading a
    JSONL file must not pull in SC-TIR, the sandbox or vLLM."""
    heavy = ("kit.sctir", "kit.solver", "kit.sandbox", "vllm", "torch")
    probe = ("import sys, kit.problem_io; "
             f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r} or m.startswith({heavy!r})))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]", loaded
