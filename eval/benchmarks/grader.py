"""Benchmark eval.grading.grader: grade every MATH test answer against itself, cache off.

Self-grading should come out ~100% correct; the pairs that do not are parser gaps of
math-verify (or of our integer fast path). Every pair is really graded: the Grader's cache is
disabled (math-verify's own in-process parse cache still serves the second parse of each pair).

    python -m eval.benchmarks.grader [--limit N] [--workers 2] [--timeout 5] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

from eval.grading.grader import Grader

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
DATA_CANDIDATES = [REPO_ROOT / "eval" / "data" / "math_test.jsonl", REPO_ROOT.parent / "shared" / "data" / "math_test.jsonl"]
TARGET_SECONDS = 60.0


def load_answers(limit: int | None) -> tuple[Path, list[str]]:
    path = next((candidate for candidate in DATA_CANDIDATES if candidate.exists()), None)
    if path is None:
        sys.exit(f"no math_test.jsonl in {', '.join(map(str, DATA_CANDIDATES))}")
    with path.open(encoding="utf-8") as rows:
        answers = [str(json.loads(line)["answer"]) for line in rows if line.strip()]
    return path, answers[:limit] if limit is not None else answers


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="first N answers only")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=5.0, help="per-pair timeout_s")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)

    path, answers = load_answers(args.limit)
    pairs = [(answer, answer) for answer in answers]
    with Grader(workers=args.workers, timeout_s=args.timeout, cache=False) as grader:
        started = time.perf_counter()
        grader.grade_many([("\\frac{1}{2}", "0.5")] * args.workers)  # start the workers
        startup_s = time.perf_counter() - started
        before = grader.stats()
        started = time.perf_counter()
        grades = grader.grade_many(pairs, progress=True)
        elapsed = time.perf_counter() - started
        after = grader.stats()
    counts = Counter(grade.status for grade in grades)
    methods = Counter(grade.method for grade in grades)
    not_correct = [{"index": index, "answer": answer, "status": grade.status, "method": grade.method}
                   for index, (answer, grade) in enumerate(zip(answers, grades)) if not grade.correct]
    result = {
        "data": str(path),
        "pairs": len(pairs),
        "workers": args.workers,
        "timeout_s": args.timeout,
        "startup_s": round(startup_s, 3),
        "elapsed_s": round(elapsed, 3),
        "pairs_per_s": round(len(pairs) / elapsed, 1) if elapsed > 0 else None,
        "statuses": dict(counts),
        "integer_fast_path": methods.get("integer", 0),
        "math_verify": methods.get("math_verify", 0),
        "workers_started": after["workers_started"] - before["workers_started"],
        "not_correct": not_correct,
    }
    print(f"data: {path} ({len(pairs)} answers, each graded against itself; cache off)")
    print(f"workers: {args.workers}, start-up {startup_s:.2f} s (not included below)")
    print(f"elapsed: {elapsed:.2f} s, {result['pairs_per_s']} pairs/s "
          f"(target: well under {TARGET_SECONDS:.0f} s for 5000 on 2 cores)")
    print(f"integer fast path: {result['integer_fast_path']}, math-verify: {result['math_verify']}")
    print("statuses: " + ", ".join(f"{status} {counts.get(status, 0)}"
                                   for status in ("correct", "wrong", "timeout", "error", "no_answer")))
    print(f"not correct: {len(not_correct)}")
    for row in not_correct:
        print(f"  #{row['index']} [{row['status']}] {row['answer']!r}")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
