"""Answer extraction and competition answer rules."""

import random

import pytest

from kit.answers import get_profile, last_boxed, normalize_free_form, parse_integer


@pytest.mark.parametrize("text, expected", [
    ("so \\boxed{42}.", "42"),
    ("\\boxed{1} then \\boxed{2}", "2"),
    ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
    ("\\boxed{ {a}+{b} }", "{a}+{b}"),
    ("\\fbox{7}", "7"),
    ("\\boxed 5$", "5"),
    # Unbraced: one run of characters, not the rest of the sentence.
    ("so \\boxed 42 and that is all $x$", "42"),
    ("\\boxed 42.", "42"),
    ("\\boxed42, done", "42"),
    ("$\\boxed 7$ is it", "7"),
    ("\\boxed 5! Great", "5"),
    ("\\boxed{1} and \\boxedx 3", "1"),
    ("\\boxed {42}", "42"),
    ("\\boxed", None),
    ("no answer here", None),
    ("truncated \\boxed{\\frac{1}{2", None),
])
def test_last_boxed_matches_braces(text, expected):
    assert last_boxed(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("42", 42), ("-7", -7), ("1,000", 1000), ("42.0", 42), ("\\frac{84}{2}", 42), ("x = 12", 12),
    ("30^\\circ", 30), ("\\$15", 15), ("15\\%", 15), ("\\text{12 apples}", None), ("2.5", None),
    ("\\frac{1}{3}", None), ("abc", None), ("", None), ("1/0", None), ("\\frac{1}{0}", None),
    ("5\\text{ cm}", 5), ("771,\\!400", 771400), ("90{,}900", 90900),
    # Not integers, though digits are there: a base-6 numeral, two answers, an equation.
    ("2112_6", None), ("19 \\text{ and }43", None), ("4x-5y=-50", None), ("x^2 + y^2 = 13", None),
])
def test_parse_integer(text, expected):
    assert parse_integer(text) == expected


def test_aimo1_and_aimo2_take_answers_mod_1000():
    assert get_profile("aimo1").parse("2024") == "24"
    assert get_profile("aimo2").parse("-1") == "999"


def test_aimo3_has_no_modulo_and_a_range():
    aimo3 = get_profile("aimo3")
    assert aimo3.parse("99999") == "99999"
    assert aimo3.parse("100000") is None
    assert aimo3.parse("-3") is None


def test_integer_profiles_reject_non_integers_and_missing_answers():
    for name in ("aimo1", "aimo2", "aimo3"):
        assert get_profile(name).parse("\\sqrt{2}") is None
        assert get_profile(name).parse(None) is None


@pytest.mark.parametrize("a, b", [
    ("\\dfrac{1}{2}", "\\frac{1}{2}"),
    ("\\left(1, 2\\right)", "(1,2)"),
    ("5\\text{ cm}", "5cm"),
    ("x = 3", "3"),
    ("1,000", "1000"),
    ("2.50", "2.5"),
    (".5", "0.5"),
    ("90^\\circ", "90"),
])
def test_free_form_normalization_merges_spellings(a, b):
    assert normalize_free_form(a) == normalize_free_form(b)


def test_free_form_keeps_different_answers_apart():
    assert normalize_free_form("\\frac{1}{2}") != normalize_free_form("\\frac{1}{3}")
    assert normalize_free_form("(1,2)") != normalize_free_form("[1,2]")


def test_unknown_profile_is_refused_by_name():
    with pytest.raises(ValueError, match="aimo9"):
        get_profile("aimo9")


@pytest.mark.parametrize("seed", range(20))
def test_the_first_boxed_watch_fires_where_the_first_complete_box_ends_however_the_text_is_split(seed):
    from kit.answers import FirstBoxedWatch

    rng = random.Random(seed)
    text = rng.choice(["We get \\boxed{12}. Then \\boxed{13}.", "a \\fbox{x^{2}} b", "\\boxed{\\frac{1}{2}} and on",
                       "no box at all }", "\\boxed {7} done", "\\boxedx{1} then \\boxed{2}!"])
    # Where a whole-text check first sees a complete box: the shortest prefix that has one.
    expected = next((i for i in range(1, len(text) + 1) if "}" in text[i - 1] and last_boxed(text[:i]) is not None), None)
    watch, seen, fired_at = FirstBoxedWatch(), 0, None
    while seen < len(text):
        piece = text[seen:seen + rng.randint(1, 4)]
        seen += len(piece)
        if watch.feed(piece):
            fired_at = seen
            break
    if expected is None:
        assert fired_at is None
    else:  # it fires with the piece that completes the box
        assert fired_at is not None and fired_at - 4 < expected <= fired_at
