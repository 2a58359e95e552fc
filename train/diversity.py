"""Diversity filter of ``train select``: keep up to k *different* solution paths per problem.

Following 360's math work (two paths whose code differs only in comments and variable names
are one path; keep the paths farthest apart), a candidate's **path key** is its code cells'
code (``cells[*].code`` of a ``train sample`` record), each cell normalised by
``normalize_code`` and joined in order; a candidate without code (plain CoT) is keyed by its
text with whitespace collapsed, so equal CoT traces still count once.

``normalize_code`` parses with ``ast`` (comments vanish), drops docstrings and every other bare
string statement, renames the names the code binds (assigned and loop variables, function and
lambda arguments, the functions and classes it defines, comprehension, ``with``/``except``/walrus
and ``match`` targets) to ``v0, v1, ...`` in order of first appearance, and writes the tree back
with ``ast.unparse`` (canonical whitespace). Not renamed: builtins, names the code imports,
attributes (``math.sqrt`` stays) and names it uses without binding. An import alias is replaced
by what it names (``import numpy as np`` becomes ``import numpy``, ``np.pi`` becomes
``numpy.pi``), so aliasing does not make a path new either. With ``normalize_constants`` every
number becomes ``0`` and every string ``''``.

What it does not guarantee: renaming is by name, not by scope (a name bound anywhere is renamed
everywhere, which is the same for two renamed copies of one program, the case that matters), and
two programs with different semantics can share a key in contrived cases (an alias equal to a
name used otherwise). Code that does not parse (model-written code often does not) is normalised
as text: its tokens (``tokenize``) without comments, separated by one space, or where even
tokenizing fails, each line cut at ``#`` (a ``#`` inside a string cuts it too) with whitespace
collapsed. It never raises.

Distances are over tokens (words and single punctuation marks of the keys): ``levenshtein`` is
rapidfuzz's normalized Levenshtein distance of the token lists, ``jaccard`` is 1 - the Jaccard
similarity of the sets of token ``JACCARD_NGRAM``-grams (a key shorter than that is one gram).
``select_diverse`` counts equal keys as one path (the first in the caller's order stands for
it), then picks greedily farthest-first: the pair farthest apart, then repeatedly the path whose
distance to the nearest one chosen is largest (ties: lowest index).
"""

from __future__ import annotations

import ast
import io
import itertools
import re
import tokenize
from dataclasses import dataclass, field, fields

import numpy as np
import yaml
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

METRICS = ("levenshtein", "jaccard")
JACCARD_NGRAM = 3  # token trigrams: a few operators and names, small enough for short cells
_TOKEN = re.compile(r"\w+|[^\w\s]")
_BINDING_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _binds(node: ast.AST) -> list[str]:
    """The names ``node`` binds."""
    if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
        return [node.id]
    if isinstance(node, ast.arg):
        return [node.arg]
    if isinstance(node, _BINDING_DEFS):
        return [node.name]
    if isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)):
        return [node.name] if node.name else []
    if isinstance(node, ast.MatchMapping):
        return [node.rest] if node.rest else []
    return []


def _canonical_names(tree: ast.Module) -> dict[str, str]:
    """Old name -> new name: import aliases -> what they name, bound names -> v0, v1, ...
    in order of first appearance."""
    aliases, imported, bound, seen = {}, set(), set(), []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    imported.add(alias.name.split(".")[0] if isinstance(node, ast.Import) else alias.name)
        binds = _binds(node)
        bound.update(binds)
        names = [node.id] if isinstance(node, ast.Name) else binds
        seen += [((node.lineno, node.col_offset), name) for name in names]
    renamed = bound - imported - aliases.keys()
    order = list(dict.fromkeys(name for _, name in sorted(seen, key=lambda item: item[0]) if name in renamed))
    return {**aliases, **{name: f"v{i}" for i, name in enumerate(order)}}


class _Canonicalizer(ast.NodeTransformer):
    """Renames by ``names``, drops bare strings, and (``normalize_constants``) replaces constants."""

    def __init__(self, names: dict[str, str], normalize_constants: bool) -> None:
        self.names = names
        self.normalize_constants = normalize_constants

    def generic_visit(self, node: ast.AST) -> ast.AST:
        if isinstance(node, ast.Name):
            node.id = self.names.get(node.id, node.id)
        elif isinstance(node, ast.arg):
            node.arg = self.names.get(node.arg, node.arg)
        elif isinstance(node, (*_BINDING_DEFS, ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
            node.name = self.names.get(node.name, node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            node.rest = self.names.get(node.rest, node.rest)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            node.names = [self.names.get(name, name) for name in node.names]
        elif isinstance(node, ast.keyword) and node.arg:  # f(n=...) names a parameter of a renamed def
            node.arg = self.names.get(node.arg, node.arg)
        elif isinstance(node, ast.alias) and node.asname in self.names:
            node.asname = None
        return super().generic_visit(node)

    def visit_Expr(self, node: ast.Expr) -> ast.AST | None:
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return None  # docstrings and other bare strings: prose, not the method
        return self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> ast.Constant:
        if not self.normalize_constants or isinstance(node.value, bool) or node.value is None or node.value is ...:
            return node
        return ast.Constant(value="" if isinstance(node.value, (str, bytes)) else 0)


def _normalize_text(code: str) -> str:
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError):  # unclosed brackets or triple quotes, bad dedents
        lines = (" ".join(line.split("#", 1)[0].split()) for line in code.splitlines())
        return "\n".join(line for line in lines if line)
    skipped = (tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER)
    marks = {tokenize.NEWLINE: "\n", tokenize.INDENT: "<indent>", tokenize.DEDENT: "<dedent>"}
    lines = " ".join(marks.get(tok.type, tok.string) for tok in tokens if tok.type not in skipped).split("\n")
    return "\n".join(" ".join(line.split()) for line in lines if line.strip())


def normalize_code(code: str, rename_variables: bool = True, normalize_constants: bool = False) -> str:
    """``code`` as the same text for every copy that differs only in comments, docstrings,
    whitespace and (``rename_variables``) the names it binds or (``normalize_constants``) its
    numbers and strings. See the module docstring."""
    try:
        tree = ast.parse(code)
        names = _canonical_names(tree) if rename_variables else {}
        return ast.unparse(_Canonicalizer(names, normalize_constants).visit(tree))
    except (SyntaxError, ValueError, RecursionError):  # not Python, null bytes, absurd nesting: text rules
        return _normalize_text(code)


def path_key(sample: dict, rename_variables: bool = True, normalize_constants: bool = False) -> str:
    """A ``train sample`` record's path: its code cells normalised and joined, or its text with
    whitespace collapsed when it ran no code."""
    codes = [cell["code"] for cell in sample["cells"] if cell["code"].strip()]
    if not codes:
        return " ".join(sample["text"].split())
    return "\n".join(normalize_code(code, rename_variables, normalize_constants) for code in codes)


def _tokens(key: str) -> list[str]:
    return _TOKEN.findall(key)


def _ngrams(tokens: list[str]) -> set[tuple[str, ...]]:
    if len(tokens) < JACCARD_NGRAM:
        return {tuple(tokens)}
    return {tuple(tokens[i:i + JACCARD_NGRAM]) for i in range(len(tokens) - JACCARD_NGRAM + 1)}


def _jaccard_distance(a: set, b: set) -> float:
    union = len(a | b)
    return 1.0 - len(a & b) / union if union else 0.0


def distance_matrix(keys: list[str], metric: str = "levenshtein") -> np.ndarray:
    """Pairwise token distances in [0, 1] of ``keys`` (symmetric, zero diagonal)."""
    if metric not in METRICS:
        raise ValueError(f"metric: expected one of {', '.join(METRICS)}, got {metric!r}")
    token_lists = [_tokens(key) for key in keys]
    if metric == "levenshtein":
        return process.cdist(token_lists, token_lists, scorer=Levenshtein.normalized_distance, dtype=np.float64)
    grams = [_ngrams(tokens) for tokens in token_lists]
    distances = np.zeros((len(keys), len(keys)))
    for i, j in itertools.combinations(range(len(keys)), 2):
        distances[i, j] = distances[j, i] = _jaccard_distance(grams[i], grams[j])
    return distances


def path_distance(a: str, b: str, metric: str = "levenshtein") -> float:
    """The token distance in [0, 1] between two path keys."""
    return float(distance_matrix([a, b], metric)[0, 1])


def select_diverse(keys: list[str], k: int | None, metric: str = "levenshtein") -> list[int]:
    """Indices (ascending) of up to ``k`` distinct paths of ``keys`` chosen farthest-first;
    all distinct paths when ``k`` is None or <= 0, the first when ``k`` is 1."""
    first = {}
    for i, key in enumerate(keys):
        first.setdefault(key, i)
    distinct = list(first.values())
    if not k or k < 0 or len(distinct) <= k:
        return distinct
    if k == 1:
        return distinct[:1]
    distances = distance_matrix([keys[i] for i in distinct], metric)
    upper = np.where(np.triu(np.ones_like(distances, dtype=bool), 1), distances, -1.0)
    chosen = list(np.unravel_index(int(np.argmax(upper)), upper.shape))  # first maximum: lowest indices
    nearest = distances[chosen].min(axis=0)
    while len(chosen) < k:
        nearest[chosen] = -1.0
        chosen.append(int(np.argmax(nearest)))
        nearest = np.minimum(nearest, distances[chosen[-1]])
    return sorted(distinct[int(i)] for i in chosen)


@dataclass
class DiversityConfig:
    """The recipe's ``diversity:`` switch of ``train select``."""

    enabled: bool = field(default=True, metadata={"help": "Keep only different solution paths per problem."})
    max_paths: int | None = field(
        default=8, metadata={"help": "Paths kept per problem (k); 0 or null keeps every distinct path. 8: in 360's "
                                     "math work about 7.8 distinct paths per problem survived on average."})
    metric: str = field(default="levenshtein", metadata={
        "help": "Distance between paths, over tokens: levenshtein (normalized edit distance of the token lists) or "
                f"jaccard (1 - Jaccard similarity of token {JACCARD_NGRAM}-gram sets)."})
    rename_variables: bool = field(default=True, metadata={
        "help": "Names the code binds become v0, v1, ...: renamed copies of a program are one path."})
    normalize_constants: bool = field(default=False, metadata={
        "help": "Numbers become 0 and strings '': programs that differ only in constants are one path."})

    def __post_init__(self) -> None:
        switches = {"enabled": self.enabled, "rename_variables": self.rename_variables,
                    "normalize_constants": self.normalize_constants}
        for name, value in switches.items():
            if not isinstance(value, bool):
                raise ValueError(f"diversity: {name} must be true or false, got {value!r}")
        if self.max_paths is not None and (isinstance(self.max_paths, bool) or not isinstance(self.max_paths, int)
                                           or self.max_paths < 0):
            raise ValueError(f"diversity: max_paths must be an integer >= 0 (0: every distinct path), "
                             f"got {self.max_paths!r}")
        if self.metric not in METRICS:
            raise ValueError(f"diversity: metric must be one of {', '.join(METRICS)}, got {self.metric!r}")


def diversity_config(value: dict | str | bool | None) -> DiversityConfig:
    """A recipe's ``diversity`` value as a config: a mapping in YAML (``{max_paths: 4, metric:
    jaccard}``), YAML/JSON text on the command line, or true/false to switch it on/off."""
    mapping = yaml.safe_load(value) if isinstance(value, str) else value
    if mapping is None:
        return DiversityConfig()
    if isinstance(mapping, bool):
        return DiversityConfig(enabled=mapping)
    if not isinstance(mapping, dict):
        raise ValueError(f"diversity: expected a mapping of DiversityConfig fields or true/false, got {value!r}")
    known = [f.name for f in fields(DiversityConfig)]
    unknown = [key for key in mapping if key not in known]
    if unknown:
        raise ValueError(f"diversity: unknown key {unknown[0]!r} (known: {', '.join(known)})")
    return DiversityConfig(**mapping)
