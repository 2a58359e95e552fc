"""The diversity filter of ``train select`` (train/diversity.py): code that differs only in
comments, docstrings, names and whitespace is one path; other methods are kept; k paths are kept
farthest-first."""

import itertools

import pytest

from train.diversity import (DiversityConfig, diversity_config, distance_matrix, normalize_code, path_key,
                             select_diverse)

LOOP = '''
total = 0
for i in range(1, 101):
    total += i
print(total)
'''

LOOP_RENAMED = '''
"""Sum the integers 1..100."""
acc = 0  # running sum
for k in range(1, 101):
    # add the next one
    acc += k
print(acc)
'''

CLOSED_FORM = '''
n = 100
print(n * (n + 1) // 2)
'''

FUNCTION = '''
import math
def count(limit):
    return sum(1 for a in range(limit) if math.isqrt(a) ** 2 == a)
print(count(50))
'''

FUNCTION_RENAMED = '''
import math


def squares_below(n):
    """How many perfect squares are below n."""
    # a is a square when its integer root squared gives it back
    return sum(1 for x in range(n) if math.isqrt(x) ** 2 == x)


print(squares_below(50))
'''


def sample(*codes: str, text: str = "") -> dict:
    return {"text": text, "cells": [{"code": code} for code in codes]}


def test_comments_docstrings_and_variable_names_do_not_make_a_new_path():
    assert path_key(sample(LOOP)) == path_key(sample(LOOP_RENAMED))
    assert path_key(sample(FUNCTION)) == path_key(sample(FUNCTION_RENAMED))


def test_whitespace_only_differences_are_one_path():
    spaced = "total=0\nfor i in range( 1,101 ):\n        total+= i\n\n\nprint( total )\n"
    assert normalize_code(spaced) == normalize_code(LOOP)


def test_another_method_is_kept_as_a_second_path():
    samples = [sample(LOOP), sample(LOOP_RENAMED), sample(CLOSED_FORM)]
    assert select_diverse([path_key(s) for s in samples], 8) == [0, 2]


def test_equal_paths_are_represented_by_the_first_in_the_given_order():
    keys = ["b", "a", "b", "a", "c"]
    assert select_diverse(keys, None) == [0, 1, 4]


@pytest.mark.parametrize("k", [1, 2, 3, 5, 8, 20])
def test_k_paths_are_kept_or_all_distinct_paths_when_fewer(k):
    keys = [f"x = {i}\nprint(x ** {i % 3})" for i in range(8)] + ["x = 0\nprint(x ** 0)"]  # 8 distinct
    kept = select_diverse(keys, k)
    assert len(kept) == min(k, 8)
    assert len({keys[i] for i in kept}) == len(kept)


@pytest.mark.parametrize("k", [0, None])
def test_no_k_keeps_every_distinct_path(k):
    assert select_diverse(["a", "b", "a", "c"], k) == [0, 1, 3]


# Paths on a line: key p is p tokens "x" then 10 - p tokens "y", so the token Levenshtein distance
# of keys p and q is |p - q| / 10 (substitutions; a shift costs two edits per token). In this
# order, starting from the first key or taking the first k keys is not optimal.
LINE = [3, 0, 1, 9, 2, 10, 6]
LINE_KEYS = [" ".join(["x"] * p + ["y"] * (10 - p)) for p in LINE]


def _min_pairwise(distances, subset) -> float:
    return min(distances[a][b] for a, b in itertools.combinations(subset, 2))


def test_line_keys_have_the_distances_the_greedy_test_assumes():
    distances = distance_matrix(LINE_KEYS)
    assert [[round(d * 10) for d in row] for row in distances] == [[abs(p - q) for q in LINE] for p in LINE]


@pytest.mark.parametrize("k", range(2, len(LINE)))
def test_greedy_choice_maximises_the_minimum_pairwise_distance(k):
    distances = distance_matrix(LINE_KEYS)
    best = max(_min_pairwise(distances, subset) for subset in itertools.combinations(range(len(LINE)), k))
    assert _min_pairwise(distances, select_diverse(LINE_KEYS, k)) == pytest.approx(best)


def test_jaccard_metric_also_keeps_the_farthest_pair():
    keys = ["a b c d e", "a b c d f", "p q r s t"]
    assert select_diverse(keys, 2, "jaccard") == [0, 2]


@pytest.mark.parametrize("variants", [
    # a grammar error: tokenized, comments dropped, one space between tokens
    ("for i in range(10)\n    total += i  # add\n", "for i in range( 10 )\n        total+=i\n"),
    # an unclosed bracket: tokenize fails too; lines cut at '#', whitespace collapsed
    ("x = (1,  # first\n  2", "x = (1,\n\n 2   "),
    # IPython magics
    ("!pip install sympy==1.14  # pinned\nimport sympy", "!pip   install sympy==1.14\n\nimport sympy"),
])
def test_unparsable_code_does_not_raise_and_dedupes_modulo_comments_and_whitespace(variants):
    first, second = variants
    assert normalize_code(first) == normalize_code(second)
    assert normalize_code(first) != normalize_code(first.replace("1", "7"))


def test_builtins_and_module_attributes_are_not_renamed():
    assert normalize_code("import math\ny = math.sqrt(x)") != normalize_code("import math\ny = math.floor(x)")
    assert normalize_code("y = abs(x)") != normalize_code("y = round(x)")
    assert normalize_code("import math\ny = math.sqrt(abs(x))") == "import math\nv0 = math.sqrt(abs(x))"


def test_an_import_alias_is_what_it_names():
    assert normalize_code("import numpy as np\nprint(np.pi)") == normalize_code("import numpy\nprint(numpy.pi)")


def test_rename_variables_off_keeps_names_as_written():
    assert normalize_code("a = 1", rename_variables=False) != normalize_code("b = 1", rename_variables=False)


def test_normalize_constants_decides_whether_other_constants_make_another_path():
    assert normalize_code("x = 3") != normalize_code("x = 4")
    assert normalize_code("x = 3", normalize_constants=True) == normalize_code("x = 4", normalize_constants=True)


def test_traces_without_code_are_keyed_by_their_text_with_whitespace_collapsed():
    samples = [sample(text="So  the answer is\n\\boxed{5}."), sample(text="So the answer is \\boxed{5}."),
               sample(text="Counting gives \\boxed{5}.")]
    assert select_diverse([path_key(s) for s in samples], None) == [0, 2]


@pytest.mark.parametrize("field, value", [("max_paths", -1), ("max_paths", "8"), ("metric", "cosine"),
                                          ("enabled", "yes"), ("normalize_constants", 1)])
def test_bad_config_value_fails_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        DiversityConfig(**{field: value})


def test_unknown_mapping_key_fails_naming_it():
    with pytest.raises(ValueError, match="max_path"):
        diversity_config("{max_path: 4}")


def test_mapping_from_yaml_text_sets_the_fields():
    assert diversity_config("{max_paths: 4, metric: jaccard}") == DiversityConfig(max_paths=4, metric="jaccard")
    assert diversity_config("false") == DiversityConfig(enabled=False)
