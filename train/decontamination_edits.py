"""Lightly edited copies of evaluation problems, to measure what decontamination catches.

Each edit takes a problem text and a seeded ``random.Random`` and returns the edited text, or
None when it does not apply (no ``\\frac`` to turn into ``\\dfrac``, no variable to rename).

``SAME_PROBLEM`` edits leave the problem what it was (same question, same answer): a prefix or
an instruction around it, LaTeX respelt (``\\dfrac``, ``\\left(``, spacing commands, ``\\(...\\)``
delimiters), whitespace, a variable or a person renamed throughout. A training row carrying
one *is* the evaluation problem and must be dropped. ``DIFFERENT_PROBLEM`` edits change what
is asked: a changed number changes the answer, so the row is a near-duplicate at most (like
GSM8K's train/test pairs written from one template); whether it is dropped is reported, not
required. Where this line falls is the project's choice, after the near-duplicates that 13-gram
filters such as Qwen2.5-Math's are meant to remove (the report's own table of filtered samples
was not retrievable offline to copy its classes).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable

Edit = Callable[[str, random.Random], "str | None"]

PREFIXES = ("Problem: ", "Question: ", "Solve the following problem. ", "Q: ", "Problem 3. ")
SPACES = ("\\,", "\\;", "\\!", "\\quad ", "\\ ")
SUFFIXES = ("Put your final answer within \\boxed{}.", "Show your work.", "Answer:")

_MATH = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$", re.S)
# A one-letter variable inside math: not part of a command (\pi) or of a longer word.
_VARIABLE = re.compile(r"(?<![\\A-Za-z])[A-Za-z](?![A-Za-z])")
# A capitalised name in running text, not at the start of a sentence.
_NAME = re.compile(r"(?<=[a-z,] )[A-Z][a-z]{2,}\b")
_NUMBER = re.compile(r"(?<![\d.])\d+(?![\d.])")


def _math_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the contents of $...$ and $$...$$."""
    return [m.span(1) if m.group(1) is not None else m.span(2) for m in _MATH.finditer(text)]


def _prefix(text: str, rng: random.Random) -> str:
    return rng.choice(PREFIXES) + text


def _suffix(text: str, rng: random.Random) -> str:
    return text + " " + rng.choice(SUFFIXES)


def _dfrac(text: str, rng: random.Random) -> str | None:
    return text.replace("\\frac", rng.choice(("\\dfrac", "\\tfrac"))) if "\\frac" in text else None


def _left_right(text: str, rng: random.Random) -> str | None:
    if "(" not in text or ")" not in text:
        return None
    return text.replace("(", "\\left(").replace(")", "\\right)")


def _whitespace(text: str, rng: random.Random) -> str:
    spaced = re.sub(r"\s+", lambda _: rng.choice((" ", "  ", "\n", " \n ")), text.strip())
    return re.sub(r"([=+<>])", r" \1 ", spaced)


def _spacing_commands(text: str, rng: random.Random) -> str | None:
    if not _math_spans(text):
        return None

    def spaced(m: re.Match) -> str:
        fence, body = ("$$", m.group(1)) if m.group(1) is not None else ("$", m.group(2))
        return f"{fence}{rng.choice(SPACES)}{body.replace(',', ',' + rng.choice(SPACES))}\\,{fence}"
    return _MATH.sub(spaced, text)


def _delimiters(text: str, rng: random.Random) -> str | None:
    if not _math_spans(text):
        return None
    return _MATH.sub(lambda m: f"\\[{m.group(1)}\\]" if m.group(1) is not None else f"\\({m.group(2)}\\)", text)


def _rename(text: str, rng: random.Random) -> str | None:
    """One variable renamed consistently (inside math), or else one person's name."""
    spans = _math_spans(text)
    letters = sorted({m.group(0) for start, end in spans for m in _VARIABLE.finditer(text, start, end)})
    if letters:
        old = rng.choice(letters)
        new = rng.choice([c for c in "pqrstuvwz" if c not in letters and c != old.lower()])
        out, last = [], 0
        for start, end in spans:
            renamed = _VARIABLE.sub(lambda m: new if m.group(0) == old else m.group(0), text[start:end])
            out += [text[last:start], renamed]
            last = end
        return "".join(out) + text[last:]
    names = sorted(set(_NAME.findall(text)))
    if not names:
        return None
    old = rng.choice(names)
    return re.sub(rf"\b{old}\b", "Zelda" if old != "Zelda" else "Ophelia", text)


def _combined(text: str, rng: random.Random) -> str:
    return _whitespace(_prefix(_dfrac(text, rng) or text, rng), rng)


def _change_number(text: str, rng: random.Random) -> str | None:
    numbers = list(_NUMBER.finditer(text))
    if not numbers:
        return None
    m = rng.choice(numbers)
    return text[:m.start()] + str(int(m.group(0)) + rng.randint(1, 9)) + text[m.end():]


SAME_PROBLEM: dict[str, Edit] = {
    "prefix": _prefix, "suffix": _suffix, "dfrac": _dfrac, "left_right": _left_right,
    "whitespace": _whitespace, "spacing_commands": _spacing_commands, "delimiters": _delimiters,
    "renamed_variable": _rename, "prefix_dfrac_whitespace": _combined,
}
DIFFERENT_PROBLEM: dict[str, Edit] = {"changed_number": _change_number}


def edited_copies(problems: Iterable[tuple[str, str, str]], edits: dict[str, Edit],
                  seed: int = 0) -> list[dict]:
    """One copy per (problem, edit) where the edit applies: rows ``{"id", "problem", "edit",
    "source"}`` with ``source`` the ``(split, id)`` edited. Seeded: the same call, the same rows."""
    rng = random.Random(seed)
    rows = []
    for split, problem_id, text in problems:
        for name, edit in edits.items():
            edited = edit(text, rng)
            if edited is not None and edited != text:
                rows.append({"id": f"{split}:{problem_id}:{name}", "problem": edited, "edit": name,
                             "source": (split, problem_id)})
    return rows


# Clean training problems written in the evaluation problems' phrasing (answer formats,
# an Asymptote grid preamble): none is an evaluation problem, so none may be dropped.
BOILERPLATE_ROWS = (
    "A jar holds 4 green and 9 yellow candies. Two candies are taken at random without "
    "replacement. The probability that both are green can be written in the form $\\frac{m}{n}$, "
    "where $m$ and $n$ are relatively prime positive integers. Find $m+n$.",
    "The sum of the reciprocals of the positive divisors of $20$ is $\\frac{m}{n}$, where $m$ and "
    "$n$ are relatively prime positive integers. What is $m+n$?",
    "A snail climbs a wall of height 10 and slides back a random amount each night. The expected "
    "number of nights is $\\frac{m}{n}$, where $m$ and $n$ are relatively prime positive integers. "
    "Find $m+n$.",
    "The line $y = 2x - 3$ is drawn on the grid below.\n\n[asy]\nimport graph; size(6cm); real lsf=0.5; "
    "pen dps=linewidth(0.7)+fontsize(10); defaultpen(dps); pen ds=black; real xmin=-3.5,xmax=5.5,"
    "ymin=-4.5,ymax=6.5;\n\npen cqcqcq=rgb(0.75,0.75,0.75);\n\n/*grid*/ pen gs=linewidth(0.7)+cqcqcq+"
    "linetype(\"2 2\"); real gx=1,gy=1;\nfor(real i=ceil(xmin/gx)*gx;i<=floor(xmax/gx)*gx;i+=gx) "
    "draw((i,ymin)--(i,ymax),gs); for(real i=ceil(ymin/gy)*gy;i<=floor(ymax/gy)*gy;i+=gy) "
    "draw((xmin,i)--(xmax,i),gs);\n\nLabel laxis; laxis.p=fontsize(10);\n\ndraw((-0.5,-4)--(4.5,6),blue);"
    "\n[/asy]\n\nAt what $x$ does the line cross the $x$-axis? Express your answer as a common fraction.",
)
