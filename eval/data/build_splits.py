"""Rebuild the vendored splits in this folder from the shared data folder (../shared/data
beside the checkout). The project never needs that folder at run time: the built files are
committed. Run: python eval/data/build_splits.py [SHARED_DATA_DIR]"""

import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
COPIES = {
    "aime_2022_2024.jsonl": "aime.jsonl",
    "amc_2022_2023.jsonl": "amc.jsonl",
    "amc23.jsonl": "amc23.jsonl",
    "math500.jsonl": "math500.jsonl",
    "gsm8k_test.jsonl": "gsm8k_test.jsonl",
    "math_test.jsonl": "math_test.jsonl",
}
# MATH level 4/5 problems whose last-\boxed{} answer is a plain integer (-?\d+).
INTEGER_SUBSETS = {"math_test_level4.jsonl": "math_l4.jsonl", "math_test_level5.jsonl": "math_l5.jsonl"}


def main(shared: Path) -> None:
    for source, target in COPIES.items():
        shutil.copyfile(shared / source, HERE / target)
    for source, target in INTEGER_SUBSETS.items():
        rows = [json.loads(line) for line in (shared / source).read_text().splitlines() if line.strip()]
        kept = [row for row in rows if row["answer_is_int"]]
        (HERE / target).write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in kept))
        print(f"{target}: {len(kept)} of {len(rows)} rows")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[2] / "shared" / "data")
