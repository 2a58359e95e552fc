"""Answer extraction and the per-competition answer rules.

A candidate's answer is the content of its last ``\\boxed{...}`` (braces matched, so
``\\boxed{\\frac{1}{2}}`` comes out whole). A competition profile then turns that text
into the answer it accepts, or rejects it (the candidate does not vote):

- ``aimo1`` / ``aimo2``: an integer, taken mod 1000;
- ``aimo3``: an integer in 0..99999, no modulo (out of range is invalid);
- ``integer``: any integer (for validation splits such as GSM8K and AMC);
- ``free``: MATH-style free-form text, normalized so that trivially different spellings
  (``\\dfrac`` vs ``\\frac``, ``\\left(``, ``$``, ``\\text{ cm}``) vote together.
  Equivalence grading (``1/2`` vs ``0.5``) belongs to the evaluation grader, not here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

BOXED_MARKERS = ("\\boxed", "\\fbox")


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}``/``\\fbox{...}`` in ``text`` with braces matched,
    or None when there is none or its braces never close (a truncated answer is no answer)."""
    start = max(text.rfind(marker) for marker in BOXED_MARKERS)
    if start < 0:
        return None
    i = text.find("{", start)
    # "\boxed 5" (no braces) is valid LaTeX for a single token.
    if i < 0 or text[start:i].strip() not in BOXED_MARKERS:
        rest = text[start:].split(maxsplit=1)
        if len(rest) == 2 and rest[0] in BOXED_MARKERS:
            return rest[1].split("$")[0].strip() or None
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j].strip()
    return None


_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")


def last_number(text: str) -> str | None:
    """The last number written in ``text`` (for answers taken from a code cell's output)."""
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else None


# Decoration around a number that does not change it: spacing, dollar signs, degrees, percent.
_INT_NOISE = re.compile(r"\\[,!;: ]|\\?\$|\\\(|\\\)|\^\{?\\circ\}?|\\%|%")
# A trailing unit in text ("5 \text{ cm}"); text between numbers ("19 \text{ and } 43") is no integer.
_TRAILING_UNIT = re.compile(r"\\(?:text|mathrm|mbox)\{[^{}]*\}$")
_FRAC = re.compile(r"^(-?)\\[dt]?frac\{(-?\d+)\}\{(-?\d+)\}$")
_DECIMAL = re.compile(r"-?\d+(?:\.\d+)?")


def parse_integer(text: str) -> int | None:
    """An integer from a boxed answer: ``42``, ``1,000``, ``42.0``, ``\\frac{84}{2}``,
    ``x = 42``, ``42^\\circ``, ``5\\text{ cm}``. Anything that is not exactly an integer
    gives None: ``2.5``, ``2112_6`` (a base-6 numeral), ``19 \\text{ and } 43``, ``4x-5y=-50``."""
    s = _TRAILING_UNIT.sub("", text.strip())
    s = _INT_NOISE.sub("", s).replace("{,}", ",").replace(" ", "")
    # "x = 42" names the answer; "4x-5y=-50" is an equation, not a number.
    s = re.sub(r"^[a-zA-Z]=", "", s)
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+", s):
        s = s.replace(",", "")
    m = _FRAC.match(s)
    if m:
        if int(m.group(3)) == 0:
            return None
        value = Fraction(int(m.group(2)), int(m.group(3))) * (-1 if m.group(1) else 1)
    elif _DECIMAL.fullmatch(s):
        value = Fraction(s)
    else:
        return None
    return int(value) if value.denominator == 1 else None


def normalize_free_form(text: str) -> str:
    """MATH-style normalization (after Hendrycks' ``strip_string``) so that equal answers
    written differently vote together. Not an equivalence check."""
    s = text.strip().replace("\n", "").replace("\\!", "")
    s = re.sub(r"\\text\{\s*([^}]*)\}", r"\1", s)
    s = s.replace("\\left", "").replace("\\right", "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "").replace("\\%", "").replace("%", "")
    s = s.replace("$", "").replace("\\$", "")
    s = re.sub(r"\\[,;: ]", "", s)
    s = s.replace(" ", "").rstrip(".")
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", s):
        s = s.replace(",", "")
    if re.fullmatch(r"-?\d+\.\d*", s):
        s = s.rstrip("0").rstrip(".")
    if s.startswith("."):
        s = "0" + s
    # "x=5" and "5" are the same answer to a single-variable question.
    if re.fullmatch(r"[a-zA-Z]=[^=]+", s):
        s = s.split("=", 1)[1]
    return s


@dataclass(frozen=True)
class AnswerProfile:
    """How a competition wants answers: integer or free form, modulus, range, fallback."""

    name: str
    integer: bool
    modulus: int | None
    min_value: int | None
    max_value: int | None
    fallback: str

    def parse(self, boxed: str | None) -> str | None:
        """The answer this competition accepts for a boxed text, or None (no vote)."""
        if boxed is None or not boxed.strip():
            return None
        if not self.integer:
            return normalize_free_form(boxed) or None
        value = parse_integer(boxed)
        if value is None:
            return None
        if self.modulus is not None:
            value %= self.modulus
        if self.min_value is not None and value < self.min_value:
            return None
        if self.max_value is not None and value > self.max_value:
            return None
        return str(value)


PROFILES: dict[str, AnswerProfile] = {
    "aimo1": AnswerProfile("aimo1", integer=True, modulus=1000, min_value=0, max_value=999, fallback="0"),
    "aimo2": AnswerProfile("aimo2", integer=True, modulus=1000, min_value=0, max_value=999, fallback="0"),
    "aimo3": AnswerProfile("aimo3", integer=True, modulus=None, min_value=0, max_value=99999, fallback="0"),
    # Validation splits with integer answers of any size and sign (GSM8K, AMC, MATH subsets).
    "integer": AnswerProfile("integer", integer=True, modulus=None, min_value=None, max_value=None, fallback="0"),
    "free": AnswerProfile("free", integer=False, modulus=None, min_value=None, max_value=None, fallback=""),
}


def get_profile(name: str) -> AnswerProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown answer profile {name!r}; choose one of {sorted(PROFILES)}") from None
