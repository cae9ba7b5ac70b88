"""Row hashes and exact-duplicate removal for Arrow tables (ingest drops repeated health checks,
validation finds repeated series keys across files).

A vectorised 64-bit hash per row lets both look only at candidate rows; candidates are then
compared exactly, so a hash collision never drops a row or breaks a rule.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["drop_exact_duplicates", "hash_rows"]


def drop_exact_duplicates(table: pa.Table) -> tuple[pa.Table, int]:
    """Keep the first of every set of identical rows: (table, rows dropped).

    A vectorised 64-bit row hash finds candidate duplicates (usually none: one sort of the
    hashes, milliseconds per day file; ``np.unique`` with indices was 10x slower); only
    candidates are compared value by value, so a hash collision never drops a row.
    """
    n = table.num_rows
    if n < 2:
        return table, 0
    h = hash_rows(table)
    if h is None:  # nested columns: compare whole rows (such tables are small)
        candidates = np.arange(n)
    else:
        ordered = np.sort(h)
        if not (ordered[1:] == ordered[:-1]).any():
            return table, 0
        _, first, counts = np.unique(h, return_index=True, return_counts=True)
        if counts.max() == 1:
            return table, 0
        candidates = np.flatnonzero(np.isin(h, h[first[counts > 1]]))
    rows = table.take(pa.array(candidates)).to_pylist()
    seen, drop = set(), []
    for i, row in zip(candidates.tolist(), rows):
        key = json.dumps(row, sort_keys=True, default=repr)
        if key in seen:
            drop.append(i)
        seen.add(key)
    if not drop:
        return table, 0
    keep = np.ones(n, dtype=bool)
    keep[drop] = False
    return table.filter(pa.array(keep)), len(drop)


def hash_rows(table: pa.Table) -> np.ndarray | None:
    """A 64-bit hash per row over every column (None when a column is nested).

    Equal rows hash equal (strings by their dictionary code within ``table``), so rows with
    distinct hashes are certainly distinct; equal hashes are only candidates.
    """
    n = table.num_rows
    h = np.full(n, 0xCBF29CE484222325, dtype=np.uint64)
    shifted = np.empty(n, dtype=np.uint64)
    prime, shift = np.uint64(0x100000001B3), np.uint64(29)
    with np.errstate(over="ignore"):
        for col in table.columns:
            arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
            if pa.types.is_nested(arr.type):
                return None
            codes = _hash_codes(arr)
            # in place: ~2x faster than building new arrays for each step on 10M rows
            np.bitwise_xor(h, codes, out=h)
            np.multiply(h, prime, out=h)
            np.right_shift(h, shift, out=shifted)
            np.bitwise_xor(h, shifted, out=h)
    return h


def _hash_codes(arr: pa.Array) -> np.ndarray:
    """A column as 64-bit codes (strings by dictionary code, floats by bits), copying only what it must."""
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type) or pa.types.is_binary(arr.type):
        arr = pc.dictionary_encode(arr).indices
    elif pa.types.is_dictionary(arr.type):
        arr = arr.indices
    if pa.types.is_floating(arr.type):
        arr, fill = arr.cast(pa.float64()), 0.0
    elif pa.types.is_boolean(arr.type):
        fill = False
    else:
        arr, fill = arr.cast(pa.int64()), -1  # timestamps and dates: a zero-copy view of their integers
    values = (arr.fill_null(fill) if arr.null_count else arr).to_numpy(zero_copy_only=False)
    if values.dtype.itemsize == 8:
        return np.ascontiguousarray(values).view(np.uint64)
    return values.astype(np.uint64)
