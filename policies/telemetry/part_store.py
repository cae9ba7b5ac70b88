"""The incremental ingest's store on disk: content-addressed parts, atomic writes, pruning."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["digest", "store_part", "write_atomic", "prune_parts"]


def digest(key: str, data: bytes) -> str:
    return hashlib.sha256(key.encode() + b"\0" + data).hexdigest()


def store_part(path: Path, data: bytes) -> None:
    if not path.exists():  # content-addressed: an existing part already holds these bytes
        write_atomic(path, data)


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def prune_parts(root: Path, keep: set[str], *, before_s: float | None = None, folder: str = "parts") -> int:
    """Delete stored parts not in ``keep`` (part file names); returns how many were deleted.

    Called after the state naming ``keep`` was committed, so a crash midway only leaves
    unreferenced files for the next run. Parts written at or after ``before_s`` (epoch seconds;
    the start of this run's ingest) are kept: they may belong to another run of the same source
    that has not committed yet. A part pruned under such a run is simply read again from the
    source next time (every stored part is checked to exist before it is used).
    """
    parts = Path(root) / folder  # "arrow": the mapped copies of health-check parts, by sha256
    if not parts.is_dir():
        return 0
    pruned = 0
    for path in parts.iterdir():
        if path.name in keep or path.name.startswith(".") or not path.is_file():
            continue  # referenced, a write in progress (.name.pid.tmp), or not ours
        try:
            if before_s is not None and path.stat().st_mtime >= before_s:
                continue
            path.unlink()
            pruned += 1
        except FileNotFoundError:  # pruned by a concurrent commit
            continue
    return pruned
