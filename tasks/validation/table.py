"""Table-level rules over a whole (clean) table: series order across files and freshness.

Great Expectations runs per batch of files, so rules that must see every file at once are
checked here, in pyarrow and numpy, on the concatenated clean table.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from policies.telemetry.mapped import release_batch
from policies.telemetry.rowhash import hash_rows
from tasks.validation.rules import jsonable, result

__all__ = ["SERIES_KEYS", "FRESHNESS_COLUMN", "table_rules", "series_ordered"]

SERIES_KEYS = {"health_checks": ("service_id", "probe", "ts")}
FRESHNESS_COLUMN = {"health_checks": "ts", "incidents": "started_at"}


def table_rules(
    name: str, table: pa.Table, files: list[tuple[str | None, int]], now: datetime, max_age_min: float | None
) -> list[dict]:
    """Rules over the whole (clean) table; ``files`` are its parts' (file, rows), in concatenation order."""
    out = []
    keys = SERIES_KEYS.get(name)
    if keys and len(files) > 1:  # within one file GE's compound uniqueness already covers it
        out.append(series_ordered(table, keys, files))
    column = FRESHNESS_COLUMN.get(name)
    if column and max_age_min is not None and table.num_rows:
        newest = _newest(table[column])
        oldest_ok = now - pd.Timedelta(minutes=max_age_min)
        rule = f"freshness: newest {column} within {max_age_min:g} min of {now.isoformat(timespec='seconds')}"
        out.append(
            result(
                "table",
                rule,
                column,
                newest >= oldest_ok,
                0 if newest >= oldest_ok else 1,
                [] if newest >= oldest_ok else [jsonable(newest)],
            )
        )
    return out


def series_ordered(table: pa.Table, keys: tuple[str, ...], files: list[tuple[str | None, int]]) -> dict:
    """After sorting by (service, probe, ts), each series' timestamps strictly increase (no repeats across files).

    Sorted ascending, a series' timestamps fail to increase exactly where a (service, probe,
    ts) key repeats. Within one file GE's compound uniqueness already judges that, so only
    files whose time ranges overlap another file's can add a repeat (day files usually share
    none: then this costs one min/max per file). In those, a 64-bit hash of the keys finds the
    only rows that can repeat (equal keys hash equal); one numpy sort of the hashes takes ~0.1 s
    for 10M rows where a pyarrow sort of the three columns took ~5 s. Only those candidates are
    sorted and compared exactly, so a hash collision never breaks the rule. The clean table is
    the parts concatenated in order, so the message can name the files holding the repeats.
    """
    part = np.repeat(np.arange(len(files), dtype=np.int32), [n for _, n in files])
    rows = _rows_of_overlapping_files(table[keys[-1]], [n for _, n in files])
    sub = _take(table.select(list(keys)), rows)
    h = hash_rows(sub)
    if h is None:
        candidates = np.arange(sub.num_rows)
    else:
        ordered = np.sort(h)
        repeated = ordered[1:][ordered[1:] == ordered[:-1]]
        candidates = np.flatnonzero(np.isin(h, repeated)) if repeated.size else np.zeros(0, dtype=np.int64)
    sub = _take(sub, candidates).append_column("_part", pa.array(part[rows[candidates]]))
    order = pc.sort_indices(sub, sort_keys=[(k, "ascending") for k in keys])
    s = sub.take(order)
    same = np.ones(s.num_rows - 1, dtype=bool) if s.num_rows > 1 else np.zeros(0, dtype=bool)
    for k in keys[:-1]:
        col = s[k].combine_chunks()
        same &= pc.equal(col[1:], col[:-1]).to_numpy(zero_copy_only=False)
    ts = s[keys[-1]].combine_chunks().cast(pa.int64()).to_numpy()
    bad = same & (ts[1:] <= ts[:-1])
    where = np.flatnonzero(bad)
    examples = [jsonable({k: s[k][int(i) + 1].as_py() for k in keys}) for i in where[:5]]
    named = None
    if where.size:
        part = s["_part"].combine_chunks().to_numpy()
        hit = sorted(set(part[where].tolist()) | set(part[where + 1].tolist()))
        named = ", ".join(str(files[i][0]) for i in hit[:4]) + (" ..." if len(hit) > 4 else "")
    rule = f"series: {keys[-1]} strictly increasing per ({', '.join(keys[:-1])}) after sorting, across files"
    return result("table", rule, ", ".join(keys), not bad.any(), int(bad.sum()), examples, file=named)


def _rows_of_overlapping_files(column: pa.ChunkedArray, sizes: list[int]) -> np.ndarray:
    """Rows of the files whose [min, max] of ``column`` meets another file's (ends included)."""
    starts = np.cumsum([0, *sizes])
    spans = []
    for k, n in enumerate(sizes):
        if n:
            piece = column.slice(int(starts[k]), n)
            low, high = pc.min_max(piece).values()
            for chunk in piece.chunks:  # mapped day files: this file's pages are not needed again
                release_batch(chunk)
            if not low.is_valid:  # no times at all (the schema step rejects null ts): nothing to repeat
                continue
            spans.append((low.cast(pa.int64()).as_py(), high.cast(pa.int64()).as_py(), k))
    spans.sort()
    keep: list[int] = []
    cluster: list[int] = []
    reach = None
    for low, high, k in spans:
        if reach is not None and low <= reach:
            cluster.append(k)
            reach = max(reach, high)
            continue
        keep += cluster if len(cluster) > 1 else []
        cluster, reach = [k], high
    keep += cluster if len(cluster) > 1 else []
    if not keep:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.arange(starts[k], starts[k + 1], dtype=np.int64) for k in sorted(keep)])


def _newest(column: pa.ChunkedArray):
    """``pc.max(column).as_py()`` read chunk by chunk, each mapped chunk's pages dropped after it."""
    maxima = []
    for chunk in column.chunks:
        maxima.append(pc.max(chunk))
        release_batch(chunk)
    return pc.max(pa.array(maxima, column.type)).as_py() if maxima else None


def _take(table: pa.Table, rows: np.ndarray) -> pa.Table:
    """``table.take`` without its cost for no rows (a take on many chunks first joins them: ~0.3 s at 10M)."""
    return table.slice(0, 0) if not rows.size else table.take(pa.array(rows))
