"""Reading and writing a run directory's files so that a kill at any moment loses nothing
finished: JSON lines are appended and synced one problem at a time, a half-written last line is
dropped on reading, and a file that is rewritten is written beside itself and renamed over."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def read_complete_lines(path: Path, repair: bool = False) -> list[dict]:
    """The JSON lines of a file, without a half-written last line; with ``repair`` that line is
    also cut off the file, so that appending resumes on a clean line (readers leave it alone)."""
    if not path.exists():
        return []
    records, good_bytes = [], 0
    with path.open("rb") as f:
        for raw in f:
            try:
                records.append(json.loads(raw))
            except json.JSONDecodeError:
                break
            if not raw.endswith(b"\n"):
                records.pop()  # complete JSON but no newline: the write may have been cut short
                break
            good_bytes += len(raw)
    if repair:
        with path.open("r+b") as f:
            f.truncate(good_bytes)
    return records


def json_lines(records: Iterable[dict]) -> Iterable[str]:
    return (json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def append_lines(path: Path, records: list[dict]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write("".join(json_lines(records)))
        f.flush()
        os.fsync(f.fileno())


def replace_file(path: Path, chunks: Iterable[str]) -> None:
    """Write ``path`` anew: into a temporary file in the same directory (same file system, so the
    rename is atomic), synced, then renamed over it. Until the rename the old file is untouched,
    so a kill or an error while writing leaves it whole; the temporary file is removed."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
