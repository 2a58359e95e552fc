"""What ``train select`` judges in one sampled trace and one problem: whether the trace is usable
at all, whether it is well-formed, whether its text changes script (mixed language), its rank in
the preference order, and whether a problem's pass rate lies in a difficulty band.

The preference order is the o1-replication notes' (arXiv 2410.18982): well-formed and correct >
correct but mixed-language (or otherwise not clean) > wrong. ``rank`` writes it as 2 > 1 > 0, and a
preference pair always has a chosen trace of higher rank than its rejected one, except for length
pairs, which compare two rank-2 traces.

Mixed language: the script of every letter the model wrote (Unicode character names: LATIN,
CYRILLIC, CJK, ARABIC, ...) outside the tool outputs the kit wrote into the trace; letters used as
mathematical symbols (Greek, the letter-like and mathematical-alphanumeric blocks) do not count.
A trace is mixed when letters outside its dominant script number at least ``min_letters``: a
model drifting into Chinese halfway through a solution is caught by a few characters, a problem
written in Chinese and solved in Chinese is not mixed.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Callable

# Scripts whose letters are mathematical symbols in a solution, not a change of language.
MATH_SCRIPTS = frozenset({"GREEK", "MATHEMATICAL", "DOUBLE-STRUCK", "SCRIPT", "BLACK-LETTER", "PLANCK",
                          "ANGSTROM", "KELVIN", "OHM", "ALEF", "BET", "GIMEL", "DALET", "INFINITY"})
# Scripts written together in one language count as one (Japanese mixes kanji and kana).
SCRIPT_GROUPS = {"HIRAGANA": "CJK", "KATAKANA": "CJK", "HALFWIDTH": "CJK", "IDEOGRAPHIC": "CJK",
                 "FULLWIDTH": "LATIN"}


def letter_script(ch: str) -> str | None:
    """The script a letter is written in (None for a non-letter or a mathematical symbol)."""
    if not ch.isalpha():
        return None
    code = ord(ch)
    if 0x2100 <= code <= 0x214F or 0x1D400 <= code <= 0x1D7FF:  # letter-like, mathematical alphanumeric
        return None
    script = unicodedata.name(ch, "UNKNOWN").split(" ")[0]
    if script in MATH_SCRIPTS:
        return None
    return SCRIPT_GROUPS.get(script, script)


def script_counts(text: str) -> Counter:
    return Counter(s for s in map(letter_script, text) if s is not None)


def is_mixed_language(text: str, min_letters: int = 2) -> bool:
    """Whether letters outside the text's dominant script number at least ``min_letters``."""
    counts = script_counts(text)
    if len(counts) < 2:
        return False
    _, dominant = counts.most_common(1)[0]
    return sum(counts.values()) - dominant >= min_letters


def model_written_text(text: str, output_spans: Callable[[str], list[tuple[int, int]]]) -> str:
    """The trace without the tool outputs the kit wrote into it (``output_spans`` of its format)."""
    pieces, cursor = [], 0
    for start, end in output_spans(text):
        pieces.append(text[cursor:start])
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces)


def unusable_reason(record: dict) -> str | None:
    """Why a sampled candidate cannot be trained on at all, None when it can: cancelled at a
    deadline (its text stops mid-thought), ended in a kit error (the text stops where the kit
    failed, not where the model went wrong), or empty."""
    if record["status"] == "cancelled":
        return "cancelled"
    if record["reason"].startswith("error"):
        return "kit_error"
    if not record["text"].strip():
        return "empty"
    return None


def is_well_formed(record: dict) -> bool:
    """It ended with a final answer of its own (a boxed answer, not one the kit read off a code
    output) and made only tool calls that parsed: the kit prunes a candidate at its first
    malformed call (kit/toolcalls/), so an answered candidate made none."""
    return record["status"] == "answered" and record["answer_source"] == "boxed"


def rank(correct: bool, clean: bool) -> int:
    """The preference order (module docstring): 2 correct and clean (well-formed, not
    mixed-language, and above the reward threshold when there is one), 1 correct but not clean,
    0 wrong."""
    if not correct:
        return 0
    return 2 if clean else 1


def check_band(band: list[float], name: str) -> tuple[float, float]:
    """A ``[lo, hi]`` pass-rate band from a recipe, checked."""
    if not isinstance(band, (list, tuple)) or len(band) != 2:
        raise ValueError(f"{name}: expected [lo, hi], got {band!r}")
    lo, hi = (float(v) for v in band)
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"{name}: expected 0 <= lo <= hi <= 1, got {band!r}")
    return lo, hi


def in_band(pass_rate: float, band: tuple[float, float]) -> bool:
    lo, hi = band
    return lo <= pass_rate <= hi
