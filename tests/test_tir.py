"""Code fences as models write them: spellings of the opening fence, and closing fences found
the way markdown defines them (a line of the fence alone)."""

import pytest

from kit.tir import ToolCell, code_to_run, open_code_block, output_block, tool_cells, truncate_output


@pytest.mark.parametrize("fence", ["```python", "```py", "```Python", "```python3", "```PYTHON", "```py3",
                                   "```ipython", "``` python", "```python  "])
def test_common_spellings_open_a_python_block(fence):
    assert code_to_run(f"Compute:\n{fence}\nx = 1\n```\n", "output_fence") == "x = 1\n"


@pytest.mark.parametrize("fence", ["```text", "```pythonic", "```", "```output", "```python print(1)"])
def test_other_fences_are_not_python_blocks(fence):
    assert code_to_run(f"{fence}\nx = 1\n```\n", "output_fence") is None


@pytest.mark.parametrize("text, code", [
    ('```python\nprint("```")\n```\n```output', 'print("```")\n'),
    ("```python\ns = 'a ``` b'\n```\n```output", "s = 'a ``` b'\n"),
    ("```python\nif True:\n    x = 1\n   ```  \n```output", "if True:\n    x = 1\n"),  # indented, trailing spaces
    ("```python\nx = 1\n````\n```output", "x = 1\n"),  # a longer fence closes too
    ("```python\nx = 1\n```output", "x = 1\n"),  # the closing fence skipped
    ("```python\r\nx = 1\r\n```\r\n```output", "x = 1\r\n"),
])
def test_the_closing_fence_is_a_line_of_the_fence_alone(text, code):
    assert code_to_run(text, "output_fence") == code


def test_a_stop_string_inside_the_code_leaves_the_block_open():
    assert code_to_run('```python\nprint("```output', "output_fence") is None
    assert open_code_block('```python\nprint("```output')
    assert code_to_run('```python\nx = """a```\n', "code_close") is None
    assert open_code_block('```python\nx = """a```\n')


def test_an_output_fence_without_code_is_no_open_block():
    assert not open_code_block("no code here\n```output")
    assert not open_code_block("```python\nx = 1\n```\n```output")


def test_code_close_runs_only_when_the_python_block_just_closed():
    assert code_to_run('```python\nx = """a```\nb"""\n```\n', "code_close") == 'x = """a```\nb"""\n'
    assert code_to_run("```py\nx = 1\n```\nthen\n```text\nhi\n```\n", "code_close") is None


def test_the_code_to_run_is_the_last_complete_block():
    text = "```python\na = 1\n```\n```output\n```\n```python\nb = 2\n```\n```output"
    assert code_to_run(text, "output_fence") == "b = 2\n"
    assert code_to_run("```python\nunclosed", "output_fence") is None
    # A block opened twice: the code is what follows the last opening fence.
    assert code_to_run("```python\n```python\nx = 1\n```\n```output", "output_fence") == "x = 1\n"


def test_code_close_trigger_runs_only_a_python_block_that_just_closed():
    assert code_to_run("```python\n```python\nx = 1\n```\n", "code_close") == "x = 1\n"
    assert code_to_run("```python\nx = 1\n```\nthen\n```text\nhi\n```\n", "code_close") is None
    assert code_to_run("```python\nx = 1\n```\n```output", "output_fence") == "x = 1\n"


def test_truncation_keeps_head_and_tail_with_a_marker():
    out = truncate_output("H" * 500 + "ValueError: bad", 100)
    assert out.startswith("H" * 50) and out.endswith("ValueError: bad")
    assert "truncated" in out
    assert output_block("4", 200) == "\n4\n```\n"


def test_a_stored_cell_is_a_python_block_and_the_output_block_after_it():
    solution = "Compute:\n```python\nprint(2 + 2)\n```\n```output\n4\n```\nSo 4."
    assert tool_cells(solution) == [ToolCell("print(2 + 2)\n", "4", solution.index("```python"),
                                             solution.index("```\n```output"), solution.index("So 4."))]


@pytest.mark.parametrize("solution, cells", [
    ("```python\nx = 1\n```\n\n```output\n\n```\n", [("x = 1\n", "")]),  # a blank line between, an empty output
    ("```py\nx = 1\n```output\n1\n```", [("x = 1\n", "1")]),  # no closing fence; the output ends the text
    ("```python\nprint('a ``` b')\n```\n```output\na ``` b\n```\n", [("print('a ``` b')\n", "a ``` b")]),
    ("```python\nx = 1\n```\nThen:\n```output\n1\n```\n", []),  # text between: no cell
    ("No code.\n```output\n1\n```\n", []),  # an output after no python block
    ("```python\nx = 1\n```\nNo output.", []),  # a python block that never ran
    ("```python\na = 1\n```\n```output\n```\n```output\n2\n```\n", [("a = 1\n", "")]),  # one block, one cell
])
def test_stored_cells(solution, cells):
    assert [(cell.code, cell.output) for cell in tool_cells(solution)] == cells
