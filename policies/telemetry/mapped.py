"""Health-check day files as memory-mapped Arrow IPC files, so no stage holds the history in memory.

At 1,000 services a month of 1-minute checks is 86M rows, about 5 GB as Arrow: held whole, the
tables alone would nearly fill the nightly's memory budget. Instead ingest writes each clean
day file once as an uncompressed Arrow IPC file (content-addressed by the part's sha256, so a
reused day file is not written again) and hands on a table *mapped* from it: zero-copy, the
same values and the same chunks as the parsed table. Every later stage reads it chunk by chunk
(one day file each), so only the pages it is reading are resident; they are clean file pages,
which the kernel drops under pressure and :func:`release_pages` drops at once (each stage ends
with it, so the next one starts from none).
"""

from __future__ import annotations

import mmap
import os
import threading
import weakref
from pathlib import Path

import pyarrow as pa

__all__ = ["map_table", "open_mapped", "release_pages", "release_batch", "mapped_bytes"]

_LIVE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # mapping -> its first byte's address
_PAGE = mmap.PAGESIZE
_LOCK = threading.Lock()


def map_table(table: pa.Table, path: str | Path) -> pa.Table:
    """``table`` written to ``path`` as Arrow IPC (unless already there) and mapped back from it."""
    path = Path(path)
    if path.is_file():
        try:
            mapped = open_mapped(path)
        except FileNotFoundError:  # pruned meanwhile by another run's commit: write it again
            mapped = None
        # Same rows, same schema: the file was written from the same bytes (its name is their
        # sha256), unless parsing changed since; then it is written again.
        if mapped is not None and mapped.num_rows == table.num_rows and mapped.schema.equals(table.schema):
            return mapped
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)  # batch by batch: the chunks are kept as they are
    os.replace(tmp, path)  # atomic: a concurrent run maps either no file or a whole one
    return open_mapped(path)


def open_mapped(path: str | Path) -> pa.Table:
    """The table of an Arrow IPC file, its buffers pointing into a read-only mapping of the file."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            raise ValueError(f"{path}: empty Arrow file")
        mapping = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    whole = pa.py_buffer(mapping)
    table = pa.ipc.open_file(pa.BufferReader(whole)).read_all()
    with _LOCK:
        _LIVE[mapping] = whole.address  # kept alive by the table's buffers; gone (and unmapped) with them
    return table


def release_pages() -> int:
    """Drop the resident pages of every live mapping (they are read again from the file when next
    touched); returns how many bytes are mapped."""
    with _LOCK:
        live = list(_LIVE)
    total = 0
    for mapping in live:
        try:
            mapping.madvise(mmap.MADV_DONTNEED)
        except (ValueError, OSError):  # closed meanwhile
            continue
        total += len(mapping)
    return total


def release_batch(batch: pa.RecordBatch | pa.Array) -> int:
    """Drop the resident pages under one record batch's (or array's) buffers, leaving
    the other mappings' pages to whoever reads them; returns the bytes released (0: not mapped).

    A batch's buffers are one contiguous body in its IPC file, so one range per mapping is
    dropped, widened to whole pages (a neighbour's page dropped with it is read again)."""
    columns = batch.columns if isinstance(batch, pa.RecordBatch) else [batch]
    spans = [(b.address, b.address + b.size) for col in columns for b in col.buffers() if b is not None and b.size]
    if not spans:
        return 0
    with _LOCK:
        live = list(_LIVE.items())
    released = 0
    for mapping, base in live:
        if mapping.closed:
            continue
        inside = [(lo, hi) for lo, hi in spans if base <= lo < base + len(mapping)]
        if not inside:
            continue
        start = (min(lo for lo, _ in inside) - base) // _PAGE * _PAGE
        end = min(len(mapping), max(hi for _, hi in inside) - base)
        if end <= start:
            continue
        try:
            mapping.madvise(mmap.MADV_DONTNEED, start, end - start)
        except (ValueError, OSError):  # closed meanwhile
            continue
        released += end - start
    return released


def mapped_bytes() -> int:
    """Bytes mapped by live tables (the history these stages do not hold in memory)."""
    with _LOCK:
        live = list(_LIVE)
    return sum(len(m) for m in live if not m.closed)
