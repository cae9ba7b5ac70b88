"""Read a telemetry folder into tables and fingerprint it.

A source folder holds one file per table named after it (``services.parquet`` or
``services.csv``), or a folder of files for partitioned tables
(``health_checks/2026-10-01.parquet``). Inputs are only ever read. The snapshot is
content-addressed: the sha256 of each table's files (names and bytes, in sorted
order) identifies exactly what a run saw, for MLflow lineage and cache keys.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from policies.errors import DataValidationError, RuleViolation
from policies.schema import REQUIRED_TABLES, TABLES

__all__ = ["Telemetry", "locate_tables", "load_telemetry", "conform_tables", "snapshot_id"]

_SUFFIXES = (".parquet", ".csv")


@dataclass(frozen=True)
class Telemetry:
    """What one run read: raw tables, where they came from, and their fingerprints."""

    source: Path
    tables: dict[str, pa.Table]
    files: dict[str, list[Path]]
    sha256: dict[str, str]

    @property
    def rows(self) -> dict[str, int]:
        return {name: t.num_rows for name, t in self.tables.items()}

    def origin(self, table: str) -> str:
        """The file or folder a table came from, for error messages."""
        paths = self.files[table]
        return str(paths[0] if len(paths) == 1 else paths[0].parent)


def locate_tables(data_dir: Path) -> dict[str, list[Path]]:
    """Find each known table's files under ``data_dir`` (sorted, so hashes repeat)."""
    found: dict[str, list[Path]] = {}
    for name in TABLES:
        folder = data_dir / name
        if folder.is_dir():
            files = sorted(p for p in folder.iterdir() if p.suffix in _SUFFIXES and not p.name.startswith("."))
            if files:
                found[name] = files
            continue
        for suffix in _SUFFIXES:
            if (data_dir / f"{name}{suffix}").is_file():
                found[name] = [data_dir / f"{name}{suffix}"]
                break
    return found


def _hash_files(paths: list[Path], root: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(str(p.relative_to(root)).encode() + b"\0")
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()


def _read(name: str, paths: list[Path]) -> pa.Table:
    schema = TABLES[name]
    try:
        if all(p.suffix == ".parquet" for p in paths):
            if len(paths) == 1:
                return pq.read_table(paths[0])
            return ds.dataset([str(p) for p in paths], format="parquet").to_table()
        # CSV: let pyarrow infer, then validation names any column that will not cast.
        options = pacsv.ConvertOptions(
            column_types={f.name: f.type for f in schema if not pa.types.is_nested(f.type)},
            strings_can_be_null=True,
        )
        return pa.concat_tables([pacsv.read_csv(p, convert_options=options) for p in paths], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        first = str(exc).splitlines()[0][:300]
        raise DataValidationError(
            [RuleViolation(name, None, "readable file", [first], file=str(paths[0] if len(paths) == 1 else paths[0].parent))]
        ) from exc


def load_telemetry(data_dir: str | Path) -> Telemetry:
    """Read every table found under ``data_dir``; a missing required table is an error."""
    root = Path(data_dir)
    if not root.is_dir():
        raise DataValidationError(
            [RuleViolation("*", None, "source folder exists", [str(root)], file=str(root))],
            hint="Point --data at a folder of telemetry tables (or run `qres sample --out DIR`).",
        )
    files = locate_tables(root)
    missing = [t for t in REQUIRED_TABLES if t not in files]
    if missing:
        raise DataValidationError(
            [RuleViolation(t, None, "required table present", [f"{t}.parquet", f"{t}.csv", f"{t}/"], file=str(root)) for t in missing]
        )
    tables = {name: _read(name, paths) for name, paths in files.items()}
    sha = {name: _hash_files(paths, root) for name, paths in files.items()}
    return Telemetry(source=root, tables=tables, files=files, sha256=sha)


def conform_tables(tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
    """Cast validated tables to their contract schemas (column order and types)."""
    out = {}
    for name, table in tables.items():
        schema = TABLES[name]
        out[name] = table.select(schema.names).cast(schema)
    return out


def snapshot_id(sha256: dict[str, str]) -> str:
    """One id for a whole input snapshot: the sha256 of the per-table digests."""
    return hashlib.sha256(json.dumps(sha256, sort_keys=True).encode()).hexdigest()
