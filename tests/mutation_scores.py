"""Per-module scores of a `make mutants` run (mutmut 3 writes mutants/<path>.meta).

caught = killed, timed out or segfaulted; the mutants listed as equivalent in tests/MUTANTS.md
(one "- `name`: why" line each) leave the denominator. Only the functions named
in SCOPE count (the grader's integer fast path, not its worker pool). Exits 1 when a module is
under TARGET, so that `make mutants` fails on a new survivor."""

from __future__ import annotations

import fnmatch
import json
import re
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

REPO = Path(__file__).resolve().parent.parent
TARGET = 0.9
CAUGHT = {"killed", "timeout", "segfault"}
# The modules and, as mutmut names them, the functions in scope.
SCOPE = {
    "kit/answers.py": ["kit.answers.*"],
    "kit/voting.py": ["kit.voting.*"],
    "kit/kaggle/time_bank.py": ["kit.kaggle.time_bank.*"],
    "kit/tir.py": ["kit.tir.*"],
    "eval/grading/grader.py": [f"eval.grading.grader.x_{name}__mutmut_*"
                               for name in ("_strip_math", "normalize_answer", "_as_integer", "grade_integer")],
}


def equivalents() -> set[str]:
    """The names listed in tests/MUTANTS.md's "Equivalent" section."""
    text = (REPO / "tests" / "MUTANTS.md").read_text()
    section = text.split("## Equivalent", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^- `([^`]+)`", section, flags=re.MULTILINE))


def main() -> int:
    equivalent = equivalents()
    seen: set[str] = set()
    below = []
    print(f"{'module':28} {'caught':>7} {'of':>4} {'equiv':>6} {'score':>7}")
    for module, patterns in SCOPE.items():
        meta = json.loads((REPO / "mutants" / (module + ".meta")).read_text())
        names = [n for n in meta["exit_code_by_key"] if any(fnmatch.fnmatch(n, p) for p in patterns)]
        statuses = Counter()
        survivors = []
        for name in names:
            status = status_by_exit_code[meta["exit_code_by_key"][name]]
            if name in equivalent:
                seen.add(name)
                statuses["equivalent"] += 1
                if status in CAUGHT:
                    print(f"  listed as equivalent but caught: {name}")
            elif status in CAUGHT:
                statuses["caught"] += 1
            else:
                survivors.append(f"{name} ({status})")
        counted = len(names) - statuses["equivalent"]
        score = statuses["caught"] / counted if counted else 1.0
        print(f"{module:28} {statuses['caught']:7} {counted:4} {statuses['equivalent']:6} {score:7.1%}")
        for survivor in survivors:
            print(f"  survived: {survivor}")
        if score < TARGET:
            below.append(module)
    for name in sorted(equivalent - seen):
        print(f"  listed in tests/MUTANTS.md but not produced (the code changed?): {name}")
    if below:
        print(f"under {TARGET:.0%}: {', '.join(below)}")
    return 1 if below else 0


if __name__ == "__main__":
    sys.exit(main())
