"""Incremental ingest: a watermark per table, a lateness window, and a content-addressed snapshot.

Telemetry arrives as files that grow (today's ``health_checks`` day file), new files (tomorrow's)
and small tables that are edited in place (an incident gets its ``resolved_at``). Each run of
:func:`ingest_incremental` keeps, under ``<state_dir>/ingest/<source-hash>/``:

- ``parts/<sha256><suffix>``: every part of the snapshot, named by its sha256: a file's bytes as
  they were read, or the Parquet of a merged day file. Parts are never overwritten.
- ``snapshots/<snapshot-id>.json``: which parts make up each table of one snapshot, the per-table
  sha256 (the same digests MLflow and the bundle manifest record) and the watermarks.
- ``state.json``: the last committed snapshot: per source file its change stamp (size + mtime or
  ETag), its digest and its part; per table its watermark (newest ``ts`` / ``started_at``).
- ``arrow/<sha256>.arrow``: each health-check part parsed, as the memory-mapped Arrow file the
  run's tables are read from (:mod:`policies.telemetry.mapped`; pruned with the parts).

A run reads from the source only what is new:

- a file whose stamp is unchanged is not read: its stored part is used (a health-check part
  straight from its mapped Arrow file, not parsed again);
- a new file is read whole;
- a changed file is read; for ``health_checks`` (append-only day files) the stored part keeps its
  rows older than ``watermark - lateness_min`` and the new version contributes only rows at or
  after that cutoff, so late rows inside the window are taken and rows later than that window
  (older than the cutoff, appearing after the fact) are dropped and counted; any other table's
  changed file replaces its old version (they are small and edited in place);
- exact duplicate rows (every column equal) are removed from every part.

The snapshot is the union of the old and the new parts, so its sha256 per table describes all the
data the model is fitted on, and re-ingesting the same files yields the same snapshot id and writes
nothing new. The state is committed (:func:`commit_ingest`) only after validation passed: a bad
file never becomes the base that later runs merge into. After the commit, parts the committed
state no longer names (a changed file's previous version) are deleted (:func:`prune_parts`);
the snapshot records keep their digests, and inputs are never touched.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from policies.errors import DataValidationError, RuleViolation
from policies.telemetry.ingest import TablePart, Telemetry, hash_parts, parse_bytes, require_tables, snapshot_id
from policies.telemetry.mapped import map_table, open_mapped
from policies.telemetry.part_store import digest, prune_parts, store_part, write_atomic
from policies.telemetry.rowhash import drop_exact_duplicates
from policies.telemetry.sources import Source, SourceFile, locate_source_files, open_source, read_bytes

__all__ = ["ingest_incremental", "commit_ingest", "prune_parts", "drop_exact_duplicates", "ingest_store"]
__all__ += ["TIME_COLUMNS", "MERGED_TABLES"]

TIME_COLUMNS = {"health_checks": "ts", "incidents": "started_at"}
MERGED_TABLES = ("health_checks",)  # append-only: a changed file adds rows, within the lateness window
_STATE_VERSION = 1


def ingest_store(state_dir: str | Path, spec: str) -> Path:
    """The folder holding one source's parts, snapshots and state."""
    return Path(state_dir) / "ingest" / hashlib.sha256(spec.encode()).hexdigest()[:16]


def ingest_incremental(
    source: str | Path, state_dir: str | Path, *, lateness_min: float = 1440, mapped: bool = True
) -> Telemetry:
    """Read what is new in ``source`` since the last committed ingest; see the module docstring.

    Returns the whole snapshot (old and new parts). Nothing is committed: call
    :func:`commit_ingest` once the snapshot validated. ``mapped``: health-check parts are
    memory-mapped Arrow files under ``arrow/`` (same values and chunks; memory stays flat).
    """
    started_s = time.time()
    src = open_source(source)
    files = locate_source_files(src)
    require_tables(src, files)
    root = ingest_store(state_dir, src.spec)
    state = _read_json(root / "state.json") or {}
    seen, marks = state.get("files", {}), state.get("watermarks", {})
    counts = dict.fromkeys(("reused", "read", "merged", "late_rows_dropped", "duplicates_dropped"), 0)
    parts: dict[str, list[TablePart]] = {}
    entries: dict[str, dict] = {}
    broken: list[RuleViolation] = []
    for name, table_files in files.items():
        cutoff = _cutoff(marks.get(name), lateness_min)
        for f in table_files:
            if mapped and name in MERGED_TABLES and (kept := _mapped_part(f, seen.get(f.key), root)) is not None:
                parts.setdefault(name, []).append(kept)
                entries[f.key] = seen[f.key]
                counts["reused"] += 1
                counts["duplicates_dropped"] += seen[f.key]["duplicates"]
                continue
            try:
                part, entry = _ingest_file(src, f, seen.get(f.key), root, cutoff, counts)
            except DataValidationError as exc:
                broken += exc.violations
                continue
            if name != "health_checks" or entry.get("duplicates") == 0:  # key tables: repeats go to the unique rule
                table, dropped = part.table, 0
            else:
                table, dropped = drop_exact_duplicates(part.table)
            entries[f.key] = {**entry, "duplicates": dropped, "rows": table.num_rows}
            counts["duplicates_dropped"] += dropped
            if (
                mapped and name in MERGED_TABLES
            ):  # the history: mapped from disk, not held (policies/telemetry/mapped.py)
                table = map_table(table, root / "arrow" / f"{entry['sha256']}.arrow")
            parts.setdefault(name, []).append(replace(part, table=table))
    if broken:
        raise DataValidationError(broken)
    sha = hash_parts(parts)
    pending = {
        "version": _STATE_VERSION,
        "source": src.spec,
        "snapshot": snapshot_id(sha),
        "sha256": sha,
        "files": entries,
        "watermarks": {**marks, **_watermarks(parts)},
    }
    return Telemetry(
        source=src.spec,
        parts=parts,
        sha256=sha,
        extra={"ingest": counts, "store": str(root), "pending_state": pending, "started_s": started_s},
    )


def commit_ingest(telemetry: Telemetry) -> bool:
    """Record the snapshot and move the watermarks; True when a new snapshot was written."""
    pending = telemetry.extra.get("pending_state")
    if not pending:
        return False
    root = Path(telemetry.extra["store"])
    snap = root / "snapshots" / f"{pending['snapshot']}.json"
    new = not snap.exists()
    if new:
        write_atomic(
            snap,
            json.dumps(
                {k: pending[k] for k in ("source", "snapshot", "sha256", "watermarks")}
                | {"parts": {k: e["part"] for k, e in pending["files"].items()}},
                indent=1,
                sort_keys=True,
            ).encode(),
        )
    text = json.dumps(pending, indent=1, sort_keys=True).encode()
    state = root / "state.json"
    if not state.exists() or state.read_bytes() != text:
        write_atomic(state, text)
    keep = {e["part"] for e in pending["files"].values()}
    started = telemetry.extra.get("started_s")
    telemetry.extra["pruned_parts"] = prune_parts(root, keep, before_s=started)
    prune_parts(root, {f"{e['sha256']}.arrow" for e in pending["files"].values()}, before_s=started, folder="arrow")
    return new


# --- one file ---------------------------------------------------------------------------


def _ingest_file(
    src: Source, f: SourceFile, prev: dict | None, root: Path, cutoff: datetime | None, counts: dict
) -> tuple[TablePart, dict]:
    stored = root / "parts" / prev["part"] if prev else None
    if prev and f.stamp and prev["stamp"] == f.stamp and stored.is_file():
        counts["reused"] += 1
        return _stored_part(f, stored, prev), prev
    try:
        data = read_bytes(src, f)
    except OSError as exc:
        raise DataValidationError(
            [RuleViolation(f.table, None, "readable file", [str(exc)[:300]], file=f.uri)]
        ) from exc
    source_sha = digest(f.key, data)
    entry = {"stamp": f.stamp, "source_sha256": source_sha}
    if prev and prev["source_sha256"] == source_sha and stored.is_file():  # touched, same bytes
        counts["reused"] += 1
        return _stored_part(f, stored, prev), {**prev, **entry}
    counts["read"] += 1
    table = parse_bytes(f, data)
    if prev and stored.is_file() and f.table in MERGED_TABLES and cutoff is not None:
        merged = _merge(_stored_part(f, stored, prev).table, table, TIME_COLUMNS[f.table], cutoff)
        if merged is not None:
            table, late = merged
            counts["merged"] += 1
            counts["late_rows_dropped"] += late
            buf = io.BytesIO()
            pq.write_table(table, buf)
            data = buf.getvalue()
            sha = digest(f.key, data)
            store_part(root / "parts" / f"{sha}.parquet", data)
            return TablePart(f, table, sha), {**entry, "sha256": sha, "part": f"{sha}.parquet"}
    store_part(root / "parts" / f"{source_sha}{f.suffix}", data)
    return TablePart(f, table, source_sha), {**entry, "sha256": source_sha, "part": f"{source_sha}{f.suffix}"}


def _mapped_part(f: SourceFile, prev: dict | None, root: Path) -> TablePart | None:
    """An unchanged health-check file's part straight from its mapped Arrow file, without parsing
    its stored Parquet again (most of a re-solve's ingest). The file was written by an earlier run
    from the same part (named by its sha256), duplicates dropped, and the table :func:`map_table`
    would return is this same mapping. None unless the stamp, the stored part, the file and its
    recorded row count all agree: the part is then read as before."""
    if not (prev and f.stamp and prev["stamp"] == f.stamp and "rows" in prev and "duplicates" in prev):
        return None
    if not (root / "parts" / prev["part"]).is_file():
        return None
    try:
        table = open_mapped(root / "arrow" / f"{prev['sha256']}.arrow")
    except (OSError, ValueError):  # pruned meanwhile, empty or not Arrow (ArrowInvalid is a ValueError)
        return None
    return TablePart(f, table, prev["sha256"]) if table.num_rows == prev["rows"] else None


def _stored_part(f: SourceFile, stored: Path, prev: dict) -> TablePart:
    """A part from the store (parsed by its stored suffix), named after its source file for messages."""
    return TablePart(f, parse_bytes(replace(f, path=str(stored)), stored.read_bytes()), prev["sha256"])


def _merge(old: pa.Table, new: pa.Table, column: str, cutoff: datetime) -> tuple[pa.Table, int] | None:
    """Old rows before the cutoff + new rows from it on; None when the columns do not allow it.

    Anything unusual (a missing or naive time column, other columns) returns None: the new
    file is then taken whole and validation judges it.
    """
    if old.schema.names != new.schema.names or column not in new.column_names:
        return None
    kind = new.schema.field(column).type
    if not (pa.types.is_timestamp(kind) and kind.tz) or old.schema.field(column).type != kind:
        return None
    at = pa.scalar(cutoff, type=pa.timestamp(kind.unit, tz="UTC")).cast(kind)
    old_kept = old.filter(pc.fill_null(pc.less(old[column], at), False))
    new_kept = new.filter(pc.fill_null(pc.greater_equal(new[column], at), True))
    late = (new.num_rows - new_kept.num_rows) - old_kept.num_rows
    try:
        merged = pa.concat_tables([old_kept.cast(new.schema), new_kept])
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    return merged, max(0, late)


def _cutoff(watermark: str | None, lateness_min: float) -> datetime | None:
    return None if watermark is None else datetime.fromisoformat(watermark) - timedelta(minutes=lateness_min)


def _watermarks(parts: dict[str, list[TablePart]]) -> dict[str, str]:
    """Newest time per table (only where the column is a zone-aware timestamp)."""
    out = {}
    for name, column in TIME_COLUMNS.items():
        newest = []
        for p in parts.get(name, ()):
            kind = p.table.schema.field(column).type if column in p.table.column_names else None
            if kind is not None and pa.types.is_timestamp(kind) and kind.tz and p.table.num_rows:
                value = pc.max(p.table[column]).as_py()
                if value is not None:
                    newest.append(value)
        if newest:
            out[name] = max(newest).isoformat()
    return out


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("version") == _STATE_VERSION else None
