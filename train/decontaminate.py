"""Drop training rows whose problem overlaps an evaluation problem (13-gram rule).

The rule follows Qwen2.5-Math's decontamination: texts are normalized (lowercased,
punctuation replaced by spaces, whitespace collapsed) and cut into word 13-grams; a training
row is dropped if any 13-gram of its problem occurs in any evaluation problem. A text shorter
than 13 words counts as a single n-gram of all its words, so a short training problem is
dropped only when it equals a short evaluation problem after normalization.

The evaluation side is every split of ``eval.splits.SPLITS`` by default. The report names, for
each dropped row, the evaluation split(s) and problem ids it overlapped, so that a drop can be
checked by hand.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from pathlib import Path

from eval.splits import SPLITS, load_split

NGRAM = 13

# Anything that is neither a letter nor a digit separates words: "well-known" and "well known"
# match, and LaTeX such as "\frac{1}{2}" becomes the words "frac 1 2".
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)

# An n-gram (its words joined by single spaces) -> the (split, eval problem id) pairs containing it.
EvalNgrams = dict[str, set[tuple[str, str]]]


def normalize(text: str) -> list[str]:
    """The words of ``text`` after lowercasing and stripping punctuation."""
    return _NON_WORD.sub(" ", text.lower()).split()


def ngrams(text: str, n: int = NGRAM) -> set[str]:
    """The word n-grams of the normalized text (the whole text when it is shorter than n words)."""
    words = normalize(text)
    if not words:
        return set()
    if len(words) < n:
        return {" ".join(words)}
    return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}


def ngrams_of_problems(problems: Iterable[tuple[str, str, str]], n: int = NGRAM) -> EvalNgrams:
    """The n-gram index of (split, id, problem text) triples."""
    index: EvalNgrams = {}
    for split, problem_id, text in problems:
        for gram in ngrams(text, n):
            index.setdefault(gram, set()).add((split, problem_id))
    return index


@functools.lru_cache(maxsize=4)
def _cached_eval_ngrams(split_names: tuple[str, ...], n: int) -> EvalNgrams:
    triples = []
    for name in split_names:
        problems, _profile = load_split(name)
        triples.extend((name, p.id, p.problem) for p in problems)
    return ngrams_of_problems(triples, n)


def build_eval_ngrams(split_names: Iterable[str] | None = None, n: int = NGRAM) -> EvalNgrams:
    """The n-gram index of the evaluation problems (all of ``eval.splits.SPLITS`` by default).
    Cached per process: building it reads every split (about a second)."""
    names = tuple(sorted(SPLITS if split_names is None else split_names))
    unknown = [name for name in names if name not in SPLITS]
    if unknown:
        raise ValueError(f"unknown evaluation split(s) {unknown}; known: {sorted(SPLITS)}")
    return _cached_eval_ngrams(names, n)


def decontaminate(rows: list[dict], eval_ngrams: EvalNgrams, text_key: str = "problem",
                  n: int = NGRAM) -> tuple[list[dict], dict]:
    """The rows whose ``text_key`` shares no n-gram with the evaluation problems, and a report:
    counts and, per dropped row, its id, the overlapping splits and evaluation problem ids and
    one overlapping n-gram."""
    kept, dropped = [], []
    for index, row in enumerate(rows):
        if text_key not in row:
            raise ValueError(f"decontaminate: row {row.get('id', index)!r} has no {text_key!r} key "
                             f"(keys: {sorted(row)})")
        hits: set[tuple[str, str]] = set()
        example = None
        for gram in ngrams(row[text_key], n):
            found = eval_ngrams.get(gram)
            if found:
                hits |= found
                example = example or gram
        if not hits:
            kept.append(row)
            continue
        dropped.append({
            "id": str(row.get("id", index)),
            "splits": sorted({split for split, _ in hits}),
            "eval_ids": sorted(f"{split}:{problem_id}" for split, problem_id in hits),
            "example_ngram": example,
        })
    report = {"ngram": n, "text_key": text_key, "rows": len(rows), "kept": len(kept),
              "dropped": len(dropped), "dropped_rows": dropped}
    return kept, report


def write_report(report: dict, path: str | Path) -> Path:
    """Write a decontamination report as indented JSON (parent folders are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
