"""Properties of the grader's integer fast path: it agrees with integer equality over every
notation it accepts, and it declines (None: math-verify decides) what it does not accept."""

import itertools

from eval.grading.grader import Grade, Grader, grade_integer, normalize_answer

NUMBERS = [0, 7, -7, 10, 100, -1000, 1234567]


def notations(n: int) -> list[str]:
    sign, digits = ("-" if n < 0 else ""), str(abs(n))
    grouped = f"{abs(n):,}"
    return [f"{sign}{digits}", f"{sign}00{digits}", f"{sign}{digits}.0", f"{sign}{digits}.000", f"${sign}{digits}$",
            f" $$ {sign}{grouped} $$ ", f"{sign}{grouped}", f"{sign}{digits}."] + ([f"+{digits}"] if n >= 0 else [])


def test_the_fast_path_is_integer_equality_in_every_notation():
    for gold, pred in itertools.product(NUMBERS, repeat=2):
        for gold_text, pred_text in itertools.product(notations(gold), notations(pred)):
            expected = Grade(gold == pred, "correct" if gold == pred else "wrong", "integer")
            assert grade_integer(gold_text, pred_text) == expected, (gold_text, pred_text)


def test_minus_zero_is_zero():
    assert grade_integer("-0", "0") == grade_integer("-000", "+0.0") == Grade(True, "correct", "integer")


def test_only_enclosing_dollar_pairs_are_stripped():
    assert [grade_integer("15$", "15"), grade_integer("$15", "15"), grade_integer("5", "$5$$")] == [None] * 3
    assert normalize_answer(" $ $12$ $ ") == "12" and normalize_answer("$$") == ""


def test_a_missing_side_is_declined():
    assert grade_integer(None, "5") is None and grade_integer("5", None) is None


def test_an_empty_or_dollars_only_prediction_is_no_answer_without_a_worker():
    with Grader(workers=1) as grader:
        assert [grader.grade("42", pred).status for pred in ("$$", " $ $ ", "")] == ["no_answer"] * 3
        assert grader.worker_pids() == []
