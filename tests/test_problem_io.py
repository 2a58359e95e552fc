"""Problem files: CSV and JSONL in, clear errors naming file and line."""

import pytest

from kit.problem_io import read_problems
from kit.tir import code_to_run, last_code_block, output_block, truncate_output


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


def test_last_code_block_takes_the_last_complete_block():
    text = "```python\na = 1\n```\n```output\n```\n```python\nb = 2\n```\n```output"
    assert last_code_block(text) == "b = 2\n"
    assert last_code_block("```python\nunclosed") is None
    # A block opened twice: the code is what follows the last opening fence.
    assert last_code_block("```python\n```python\nx = 1\n```\n```output") == "x = 1\n"


def test_code_close_trigger_runs_only_a_python_block_that_just_closed():
    assert code_to_run("```python\n```python\nx = 1\n```\n", "code_close") == "x = 1\n"
    assert code_to_run("```python\nx = 1\n```\nthen\n```text\nhi\n```\n", "code_close") is None
    assert code_to_run("```python\nx = 1\n```\n```output", "output_fence") == "x = 1\n"


def test_truncation_keeps_head_and_tail_with_a_marker():
    out = truncate_output("H" * 500 + "ValueError: bad", 100)
    assert out.startswith("H" * 50) and out.endswith("ValueError: bad")
    assert "truncated" in out
    assert output_block("4", 200) == "\n4\n```\n"
