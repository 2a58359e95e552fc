"""Properties of the integer answer rule (kit.answers.parse_integer): each size limit is
inclusive (the limit itself is accepted, one more refused), exact arithmetic agrees with
Python's, equal spellings parse alike, and every refusal is logged with its reason."""

import logging
import math

import pytest

from kit.answers import (MAX_ANSWER_CHARS, MAX_BITS, MAX_EXPRESSION_CHARS, MAX_NESTING, get_profile, last_boxed,
                         last_number, normalize_free_form, normalize_latex, parse_integer)


def test_the_answer_length_limit_is_inclusive():
    assert parse_integer("9" * MAX_ANSWER_CHARS) == int("9" * MAX_ANSWER_CHARS)
    assert parse_integer("9" * (MAX_ANSWER_CHARS + 1)) is None


def test_the_expression_length_limit_is_inclusive():
    at_limit = "1+" * ((MAX_EXPRESSION_CHARS - 2) // 2) + "10"
    assert len(at_limit) == MAX_EXPRESSION_CHARS and parse_integer(at_limit) == 59
    assert parse_integer("1+" + at_limit) is None


def test_the_nesting_limit_is_inclusive_and_counts_depth_not_groups():
    nested = lambda depth: "(" * depth + "1+1" + ")" * depth + "+1"  # noqa: E731
    assert parse_integer(nested(MAX_NESTING)) == 3
    assert parse_integer(nested(MAX_NESTING + 1)) is None
    # Many groups side by side are one level deep.
    assert parse_integer("+".join(["(1)"] * 20)) == 20
    assert parse_integer("+".join(["[1]"] * 10 + ["{1}"] * 10)) == 20


def test_the_value_size_limit_is_inclusive():
    assert parse_integer(r"2^{5000}\cdot 2^{4999}") == 2 ** 9999  # MAX_BITS bits exactly
    assert (2 ** 9999).bit_length() == MAX_BITS
    assert parse_integer(r"2^{5000}\cdot 2^{5000}") is None


def test_the_factorial_and_binomial_limits_are_inclusive():
    assert 1000 * (1000).bit_length() == MAX_BITS
    assert parse_integer("1000!") == math.factorial(1000)
    assert parse_integer("1001!") is None
    assert parse_integer(r"\binom{2000}{909}") == math.comb(2000, 909)  # 909 * 11 bits: within
    assert parse_integer(r"\binom{2000}{910}") is None


def test_a_binomial_is_bounded_by_its_smaller_side():
    assert parse_integer(r"\binom{2000}{1500}") == parse_integer(r"\binom{2000}{500}") == math.comb(2000, 500)


@pytest.mark.parametrize("latex,value", [
    (r"-\frac{84}{4}", -21), (r"\frac{-84}{4}", -21), (r"-\frac{84}{5}", None), (r"\tfrac{8}{4}", 2),
    (r"\dbinom{5}{2}", 10), (r"\tbinom{5}{2}", 10), (r"\$5", 5), (r"\$\,1{,}000", 1000),
    ("0^{1}", 0), (r"0^{\frac{1}{2}}", 0), ("0^{10^{10}}", 0), ("1^{10^{10}}", 1),
    ("(-1)^{3}", -1), ("(-1)^{4}", 1), ("(-1)^{10^{10}+1}", -1), ("(-2)^{3}", -8),
    (r"8^{\frac{1}{3}}", 2), (r"(-8)^{\frac{1}{3}}", -2), (r"4^{\frac{1}{2}}", 2), (r"9^{\frac{3}{2}}", 27),
    (r"3\cdot\left(\frac{8}{27}\right)^{\frac{1}{3}}", 2), (r"(-27)^{\frac{2}{3}}", 9),
    ("0!", 1), (r"\binom{5}{0}", 1), (r"\binom{0}{0}", 1),
])
def test_exact_arithmetic_agrees_with_python(latex, value):
    assert parse_integer(latex) == value


@pytest.mark.parametrize("latex,reason", [
    ("0^{0}", "zero to a power that is not positive"), ("0^{-1}", "zero to a power that is not positive"),
    (r"(-4)^{\frac{1}{2}}", "an even root of a negative number"), (r"2^{\frac{1}{2}}", "an irrational root"),
    ("(-1)!", "a factorial or binomial of what is not a natural number"),
    (r"\left(\frac{1}{2}\right)!", "a factorial or binomial of what is not a natural number"),
    ("1001!", f"a factorial of more than {MAX_BITS} bits"),
    (r"\binom{2000}{910}", f"a binomial coefficient of more than {MAX_BITS} bits"),
    ("2^{20000}", f"a power of more than {MAX_BITS} bits"),
    (r"2^{5000}\cdot 2^{5000}", f"a value of more than {MAX_BITS} bits"),
    ("1+" * 60 + "1", f"longer than {MAX_EXPRESSION_CHARS} characters"),
    ("((((((1))))))+1", f"nested more than {MAX_NESTING} deep"),
    ("1 000+1", "digits separated by spaces"),
    (r"\frac{1}{0}", "ComplexInfinity is not integer arithmetic"),
    ("1+", "not parsed: I expected something else here"),  # the parser's first line, as latex2sympy2_extended words it
])
def test_a_refusal_is_logged_with_its_reason(latex, reason, caplog):
    with caplog.at_level(logging.INFO, logger="kit.answers"):
        assert parse_integer(latex) is None
    assert caplog.messages == [f"boxed answer {latex[:80]!r} is no integer: {reason}"]


def test_the_nesting_limit_holds_wherever_the_deep_group_is():
    deep = "(" * (MAX_NESTING + 1) + "1" + ")" * (MAX_NESTING + 1)
    for expression in (deep + "+1", "1+1+" + deep, "(1)+[2]+" + deep, "{1}+" + deep):
        assert parse_integer(expression) is None, expression


def test_only_braces_around_the_whole_answer_are_unwrapped():
    assert parse_integer("{1}+{2}") == 3
    assert parse_integer(r"\text{1}+\text{2}") == 3


def test_a_binomial_at_exactly_the_bit_budget_is_computed():
    assert 625 * (32768).bit_length() == MAX_BITS
    assert parse_integer(r"\binom{32768}{625}") == math.comb(32768, 625)
    assert parse_integer(r"\binom{32768}{626}") is None


def test_a_root_is_budgeted_by_its_result_not_its_numerator():
    # 8^(7499/3) = 2^7499: 4 bits * 7499 <= 10000 bits * 3.
    assert parse_integer(r"8^{\frac{7499}{3}}") == 2 ** 7499


def test_an_even_root_of_a_proper_fraction_is_exact():
    assert parse_integer(r"2\cdot\left(\frac{1}{4}\right)^{\frac{1}{2}}") == 1


def test_a_named_answer_is_its_value_whatever_the_letter_case():
    assert parse_integer("x = 42") == parse_integer("N = 42") == 42


@pytest.mark.parametrize("spellings", [
    [r"\frac{1}{2}", r"\tfrac{1}{2}", r"\dfrac{1}{2}", r"\dfrac{1}{2}\!"],
    [r"\binom{5}{2}", r"\dbinom{5}{2}", r"\tbinom{5}{2}"],
    ["5", r"\$5", "$5$", "5.", " 5 ", "5\n", "x=5", "X=5", r"\;5", r"\text{5}"],
    ["30", r"30^{\circ}", r"30^\circ"], ["50", r"50\%", "50%"],
    ["3", "3.0", "3.000"], ["2.5", "2.50"], ["X", "X.", "X\n"], ["12", "1\n2"], ["0.5", ".5"],
])
def test_equal_spellings_of_a_free_form_answer_vote_together(spellings):
    free = get_profile("free")
    assert {free.parse(s) for s in spellings} == {normalize_free_form(spellings[0])}
    assert free.parse(spellings[0])


def test_the_range_of_a_profile_is_inclusive():
    aimo3 = get_profile("aimo3")
    assert [aimo3.parse(s) for s in ("0", "99999", "-1", "100000")] == ["0", "99999", None, None]


def test_an_unbraced_boxed_answer_loses_only_sentence_punctuation():
    assert last_boxed(r"so \boxed X.") == "X"
    assert last_boxed(r"so \boxed 42!") == "42"


def test_an_overlong_answer_is_logged_with_its_length(caplog):
    with caplog.at_level(logging.INFO, logger="kit.answers"):
        parse_integer("9" * (MAX_ANSWER_CHARS + 1))
    assert caplog.messages == [f"boxed answer of {MAX_ANSWER_CHARS + 1} characters is no integer: "
                               f"longer than {MAX_ANSWER_CHARS}"]


def test_last_number_is_the_last_number_in_the_text():
    assert last_number("first 3, then -1,234.5 and finally 42\n") == "42"
    assert last_number("-7 is it") == "-7"
    assert last_number("no digits") is None


def test_an_escaped_dollar_is_dropped_not_spaced():
    # normalize_latex also feeds the decontamination's n-grams, where a space is a word break.
    assert normalize_latex(r"costs \$5") == "costs 5"
