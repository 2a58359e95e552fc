"""Integer answers in the notations models write, under the integer profiles, and the bounds
that keep a hostile boxed expression from hanging or exhausting the kit."""

import time

import latex2sympy2_extended
import pytest

from kit.answers import get_profile, parse_integer


@pytest.mark.parametrize("text, expected", [
    # text and font wrappers, style switches, redundant braces
    ("\\text{17}", 17), ("\\textbf{17}", 17), ("\\mathrm{17}", 17), ("\\mathbf{17}", 17),
    ("\\mathbf{\\text{17}}", 17), ("\\displaystyle 17", 17), ("{{17}}", 17), ("\\text{1,000}", 1000),
    ("\\displaystyle\\frac{84}{4}", 21), ("(17)", 17),
    # exact integer arithmetic
    ("2^{10}", 1024), ("2^{100}", 2**100), ("3\\cdot 4", 12), ("3 \\times 4", 12), ("2\\times10^3", 2000),
    ("5!", 120), ("(2+3)!", 120), ("\\frac{10!}{8!}", 90), ("\\binom{5}{2}", 10), ("\\dbinom{10}{3}", 120),
    ("\\tbinom{3}{5}", 0), ("\\dfrac{84}{4}", 21), ("\\frac{2^{10}}{4}", 256), ("3^2+4^2", 25), ("-2^{2}", -4),
    ("\\left(3\\right)^2", 9), ("\\sqrt{16}", 4), ("\\sqrt[3]{27}", 3), ("(-1)^{10^{10}}", 1), ("6/3", 2),
    ("2^{\\text{10}}", 1024),
    # not integers
    ("1.5", None), ("x+1", None), ("\\sqrt{2}", None), ("2^{-1}", None), ("10^{-2}", None), ("\\frac{7}{2}", None),
    ("\\sqrt{-4}", None), ("0^{-1}", None), ("\\{17\\}", None), ("\\gcd(12, 18)", None), ("\\pi", None),
    ("2112_6", None), ("\\text{17 apples}", None), ("19 \\text{ and } 43", None), ("1,2", None), ("1 000 \\cdot 2", None),
])
def test_integer_notations(text, expected):
    assert parse_integer(text) == expected


@pytest.mark.parametrize("profile, text, expected", [
    ("aimo3", "\\text{17}", "17"), ("aimo3", "2^{10}", "1024"), ("aimo3", "2^{20}", None),
    ("aimo1", "2^{10}", "24"), ("aimo2", "\\binom{50}{3}", "600"), ("integer", "10!", "3628800"),
])
def test_integer_profiles_take_the_value(profile, text, expected):
    assert get_profile(profile).parse(text) == expected


HOSTILE = [
    "9^{9^{9^{9}}}", "(10^{10})!", "10^{10^{10}}", "\\binom{10^{100000}}{50000}", "\\frac{9^{9^{9}}}{3}",
    "2^{10000000}", "\\binom{2^{4000}}{4000}", "(" * 40 + "1" + ")" * 40, "1" * 5000, "\\sqrt{9^{9^{9}}}", "(9^{9^{9}})^{1/2}", "3!!!!", "(" * 90 + "1" + ")" * 90,
    "{" * 90 + "1" + "}" * 90, "{" * 50_000 + "1" + "}" * 50_000, "+".join(["1"] * 400), "^".join(["9"] * 40), "1" * 100_000 + "x",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_expressions_are_refused_within_the_bound(text):
    parse_integer("2^{10}")  # the parser imported and warm
    started = time.monotonic()
    assert get_profile("integer").parse(text) is None
    assert time.monotonic() - started < 1.0


def test_a_refusal_says_why(caplog):
    caplog.set_level("INFO", logger="kit.answers")
    assert parse_integer("9^{9^{9^{9}}}") is None
    assert "more than 10000 bits" in caplog.text


def test_plain_integers_never_reach_the_parser(monkeypatch):
    def no_parser(*args, **kwargs):
        raise AssertionError("the fast path called the parser")

    monkeypatch.setattr(latex2sympy2_extended, "latex2sympy", no_parser)
    for text, expected in [("42", 42), ("-7", -7), ("1,000", 1000), ("\\text{17}", 17), ("\\frac{84}{4}", 21),
                           ("x = 12", 12), ("12\\,345", 12345), ("abc", None)]:
        assert parse_integer(text) == expected
