"""Quarantine: rows that broke a row-level rule, set aside in Parquet with the rule they broke."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["write_quarantine", "quarantine_bytes"]


def quarantine_bytes(table: pa.Table) -> bytes:
    """One table's quarantined rows as Parquet bytes (columns as the contract, plus ``_rule`` and ``_file``)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def write_quarantine(quarantine: dict[str, pa.Table], out_dir: Path) -> dict[str, Path]:
    """Write ``<out_dir>/<table>.parquet`` per table with quarantined rows (temp file, then rename)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, table in sorted(quarantine.items()):
        path = out_dir / f"{name}.parquet"
        tmp = path.with_suffix(".parquet.tmp")
        tmp.write_bytes(quarantine_bytes(table))
        tmp.replace(path)
        written[name] = path
    return written
