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

Under the integer profiles the boxed text must be exactly an integer in ordinary notation:
plain digits (the fast path, no parser), text and font wrappers (``\\text{17}``,
``\\mathbf{17}``), redundant braces, or exact integer arithmetic (``2^{10}``, ``3\\cdot 4``,
``5!``, ``\\binom{5}{2}``, ``\\frac{84}{4}``, ``\\sqrt{16}``), parsed by latex2sympy2_extended
(math-verify's LaTeX parser) with sympy's evaluation off and evaluated here with a size check
before every operation. Guaranteed: a boxed text returns in bounded time and memory whatever it
is (tens of milliseconds; the first expression also imports the parser, about 0.5 s; at most ``MAX_EXPRESSION_CHARS`` characters and ``MAX_NESTING`` levels reach the parser; no
value of more than ``MAX_BITS`` bits is ever computed; no signal.alarm, so any thread may call
it). Not guaranteed: that every integer-valued expression is recognised (anything outside the
list above, a variable or a function such as ``\\gcd``, is refused).
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from fractions import Fraction

log = logging.getLogger(__name__)

# \boxed or \fbox as a whole control word (not \boxedx).
_BOXED = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
# An unbraced argument. TeX takes one token ("\boxed 42" boxes the 4), but a model writing
# "\boxed 42." means 42: take the run up to whitespace, "$", a brace or the next macro, less
# trailing sentence punctuation (a "!" there is an exclamation; TeX would not box it either).
_UNBRACED = re.compile(r"\s*([^\s${}\\]+)")


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}``/``\\fbox{...}`` in ``text`` with braces matched,
    or None when there is none or its braces never close (a truncated answer is no answer)."""
    marker = None
    for marker in _BOXED.finditer(text):
        pass
    if marker is None:
        return None
    i = marker.end()
    while i < len(text) and text[i].isspace():
        i += 1
    if not text.startswith("{", i):
        unbraced = _UNBRACED.match(text, marker.end())
        return (unbraced.group(1).rstrip(".,;:!?") or None) if unbraced else None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j].strip()
    return None


# Longer than any marker _BOXED matches ("\\boxed", "\\fbox"), so a marker split between pieces is seen whole.
_MARKER_CHARS = 8


class FirstBoxedWatch:
    """Reads a generation step as it streams and says when a complete ``\\boxed{...}`` has been
    written (``KitConfig.stop_at_first_answer``). Linear in the step's length: before the first
    marker only the last few characters are kept (a marker may straddle two pieces); from the
    marker on, the text after it is checked when a piece brings a closing brace."""

    def __init__(self) -> None:
        self.tail = ""  # before a marker: the last characters, where a split marker may start
        self.text: str | None = None  # from the first marker on

    def feed(self, piece: str) -> bool:
        if self.text is None:
            window = self.tail + piece
            marker = _BOXED.search(window)
            if marker is None:
                self.tail = window[-_MARKER_CHARS:]
                return False
            self.text, piece = window[marker.start():], window[marker.start():]
        else:
            self.text += piece
        return "}" in piece and last_boxed(self.text) is not None


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
    ``x = 42``, ``42^\\circ``, ``5\\text{ cm}``, ``\\text{17}``, ``2^{10}``. Anything that is not
    exactly an integer gives None: ``2.5``, ``2112_6`` (a base-6 numeral), ``19 \\text{ and } 43``,
    ``4x-5y=-50``, ``\\sqrt{2}``, and (logged) expressions too large to evaluate."""
    if len(text) > MAX_ANSWER_CHARS:  # also keeps int() under Python's 4300-digit limit
        log.info("boxed answer of %d characters is no integer: longer than %d", len(text), MAX_ANSWER_CHARS)
        return None
    s = _unwrap(text.strip())
    value = _plain_integer(s)
    if value is None and _EXPRESSION_CHARS.fullmatch(s):
        try:
            value = _integer_expression(s)
        except _Refused as why:
            log.info("boxed answer %r is no integer: %s", text[:80], why)
    return value


# Wrappers that do not change what they hold; a whole answer inside one is unwrapped.
_WRAPPER = r"\\(?:text|textbf|textrm|textnormal|textit|mathrm|mathbf|mathit|mathsf|mathnormal|boldsymbol|bm|mbox)"
_WHOLLY_WRAPPED = re.compile(_WRAPPER + r"\s*\{(.*)\}|\{(.*)\}", re.DOTALL)
_STYLE = re.compile(r"\\(?:displaystyle|textstyle)\b\s*")


def _unwrap(s: str) -> str:
    """Strip style switches and (up to ``MAX_NESTING`` deep) wrappers or braces that enclose
    the whole answer."""
    s = _STYLE.sub("", s).strip()
    for _ in range(MAX_NESTING):
        m = _WHOLLY_WRAPPED.fullmatch(s)
        inner = None if m is None else m.group(1) if m.group(1) is not None else m.group(2)
        if inner is None or not _balanced(inner):
            break
        s = inner.strip()
    return s


def _balanced(s: str) -> bool:
    depth = 0
    for ch in s:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def _plain_integer(s: str) -> int | None:
    """The fast path: digits with decoration and simple fractions, no parser."""
    s = _TRAILING_UNIT.sub("", s)
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


# Integer arithmetic in LaTeX: digits, operators, groups and these commands only (wrappers
# inside are unwrapped first). A letter, "_" (a base subscript), "." or "," never reaches the
# parser: latex2sympy reads "2112_6" as 2112 and "1 000" as 1*000.
_EXPRESSION_CHARS = re.compile(r"(?:[0-9+\-*/^!()\[\]{}\s]|\\(?:[dtc]?frac|[dt]?binom|cdot|times|div|sqrt|left|right"
                               r"|displaystyle|textstyle|[,;:! ])(?![A-Za-z])|" + _WRAPPER + r"(?![A-Za-z]))+")
_INNER_WRAPPER = re.compile(_WRAPPER + r"\s*\{([^{}]*)\}")
_SPACING = re.compile(r"\\(?:left|right|displaystyle|textstyle|[,;:! ])(?![A-Za-z])")
MAX_ANSWER_CHARS = 1000
MAX_EXPRESSION_CHARS = 100
# The parser's cost grows steeply with nesting (measured: 10 nested parentheses about 1 s,
# 45 about 12 s, 90 a RecursionError); 5 levels cover any honest answer.
MAX_NESTING = 5
MAX_BITS = 10_000  # about 3000 digits: far beyond any answer, and cheap to compute


class _Refused(ValueError):
    """Why a boxed text is not taken as an integer."""


def _integer_expression(s: str) -> int | None:
    while (unwrapped := _INNER_WRAPPER.sub(r"{\1}", s)) != s:
        s = unwrapped
    s = _SPACING.sub(" ", s).strip()
    if len(s) > MAX_EXPRESSION_CHARS:
        raise _Refused(f"longer than {MAX_EXPRESSION_CHARS} characters")
    if _nesting(s) > MAX_NESTING:
        raise _Refused(f"nested more than {MAX_NESTING} deep")
    if re.search(r"\d\s+\d", s):
        raise _Refused("digits separated by spaces")
    import sympy
    from latex2sympy2_extended import latex2sympy

    try:
        # Unevaluated, so that nothing is computed before its size is checked (sympy's flag
        # is thread-local). latex2sympy has no timeout of its own: the bounds above are it.
        with sympy.evaluate(False):
            tree = latex2sympy(s, normalization_config=None)
    except Exception as error:  # the parser raises plain Exception on a syntax error
        raise _Refused(f"not parsed: {str(error).splitlines()[0] if str(error) else type(error).__name__}") from None
    value = _exact(tree)
    return value.numerator if value.denominator == 1 else None


def _nesting(s: str) -> int:
    depth = deepest = 0
    for ch in s:
        depth += 1 if ch in "({[" else -1 if ch in ")}]" else 0
        deepest = max(deepest, depth)
    return deepest


def _checked(value: Fraction) -> Fraction:
    if max(value.numerator.bit_length(), value.denominator.bit_length()) > MAX_BITS:
        raise _Refused(f"a value of more than {MAX_BITS} bits")
    return value


def _integer_arg(node) -> int:
    value = _exact(node)
    if value.denominator != 1 or value < 0:
        raise _Refused("a factorial or binomial of what is not a natural number")
    return value.numerator


def _exact(node) -> Fraction:
    """The exact value of a parsed tree of integer arithmetic; the size of every result is
    bounded before it is computed."""
    import sympy

    if isinstance(node, sympy.Rational):  # Integer included
        return _checked(Fraction(int(node.p), int(node.q)))
    if isinstance(node, (sympy.Add, sympy.Mul)):
        total = Fraction(0 if isinstance(node, sympy.Add) else 1)
        for arg in node.args:
            total = _checked(total + _exact(arg) if isinstance(node, sympy.Add) else total * _exact(arg))
        return total
    if isinstance(node, sympy.Pow):
        return _power(_exact(node.args[0]), _exact(node.args[1]))
    if isinstance(node, sympy.factorial):
        n = _integer_arg(node.args[0])
        if n * n.bit_length() > MAX_BITS:
            raise _Refused(f"a factorial of more than {MAX_BITS} bits")
        return Fraction(math.factorial(n))
    if isinstance(node, sympy.binomial):
        n, k = _integer_arg(node.args[0]), _integer_arg(node.args[1])
        if min(k, n - k) * n.bit_length() > MAX_BITS:
            raise _Refused(f"a binomial coefficient of more than {MAX_BITS} bits")
        return Fraction(math.comb(n, k))
    raise _Refused(f"{type(node).__name__} is not integer arithmetic")


def _power(base: Fraction, exponent: Fraction) -> Fraction:
    import sympy

    p, q = exponent.numerator, exponent.denominator
    if base == 0 and p <= 0:
        raise _Refused("zero to a power that is not positive")
    if base in (0, 1):
        return base
    if base == -1 and q == 1:
        return Fraction(-1 if p % 2 else 1)
    if max(base.numerator.bit_length(), base.denominator.bit_length()) * abs(p) > MAX_BITS * q:
        raise _Refused(f"a power of more than {MAX_BITS} bits")
    if q > 1:  # an exact root or nothing: a negative base has no real even root
        if base < 0 and q % 2 == 0:
            raise _Refused("an even root of a negative number")
        roots = [sympy.integer_nthroot(abs(part), q) for part in (base.numerator, base.denominator)]
        if not all(exact for _, exact in roots):
            raise _Refused("an irrational root")
        base = Fraction(int(roots[0][0]) * (1 if base > 0 else -1), int(roots[1][0]))
    return base ** p


# Spacing commands: \, \; \: \! "\ " \quad \qquad.
_LATEX_SPACING = re.compile(r"\\(?:[,;:! ]|q?quad(?![A-Za-z]))")


def normalize_latex(text: str) -> str:
    """LaTeX spellings that typeset alike, made one: ``\\dfrac``/``\\tfrac`` -> ``\\frac``,
    ``\\dbinom``/``\\tbinom`` -> ``\\binom``, ``\\left``/``\\right`` and ``\\$`` dropped, ``$``
    delimiters and spacing commands made a space (``$7$s`` and ``\\(7\\)s`` read alike). Shared by
    free-form answers and the training-data decontamination (train/decontaminate.py)."""
    s = text.replace("\\left", "").replace("\\right", "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = s.replace("\\dbinom", "\\binom").replace("\\tbinom", "\\binom")
    s = s.replace("\\$", "").replace("$", " ")
    return _LATEX_SPACING.sub(" ", s)


def normalize_free_form(text: str) -> str:
    """MATH-style normalization (after Hendrycks' ``strip_string``) so that equal answers
    written differently vote together. Not an equivalence check."""
    s = normalize_latex(text.strip().replace("\n", ""))
    s = re.sub(r"\\text\{\s*([^}]*)\}", r"\1", s)
    s = s.replace("^{\\circ}", "").replace("^\\circ", "").replace("\\%", "").replace("%", "")
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
