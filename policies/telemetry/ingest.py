"""Read a telemetry source into tables, one part per file, and fingerprint it.

A source is a folder, a glob or an fsspec URL (``policies.telemetry.sources``). Each file is read once:
its bytes are hashed and parsed from the same buffer, so the fingerprint is exactly what
was parsed. Tables are kept *per file* (``Telemetry.parts``) so that validation can name the
file a broken row came from and run partition by partition with flat memory;
``Telemetry.tables`` concatenates them (zero-copy) for callers that want whole tables.

Reading is strict, because telemetry from many teams arrives in many shapes: a Parquet file
must parse, a CSV must be UTF-8 (a BOM is fine) with a comma delimiter and a header, an empty
file is an error. Each failure is a :class:`RuleViolation` naming the file, the table and the
rule. Inputs are only ever read. The snapshot is content-addressed: the sha256 of each table's
files (keys and bytes, in sorted order).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from policies.errors import DataValidationError, RuleViolation
from policies.schema import REQUIRED_TABLES, TABLES, with_optional_columns
from policies.telemetry.partitions import apply_partitions
from policies.telemetry.sources import Source, SourceFile, locate_source_files, open_source, read_bytes

__all__ = [
    "Telemetry",
    "TablePart",
    "locate_tables",
    "load_telemetry",
    "read_part",
    "parse_bytes",
    "conform_tables",
    "snapshot_id",
    "hash_parts",
    "require_tables",
]

_DELIMITERS = (";", "\t", "|")


@dataclass(frozen=True)
class TablePart:
    """One file of one table, parsed (columns as in the file) and its sha256."""

    file: SourceFile
    table: pa.Table
    sha256: str


@dataclass(frozen=True)
class Telemetry:
    """What one run read: per-file parts of every table, where they came from, and their fingerprints."""

    source: str
    parts: dict[str, list[TablePart]]
    sha256: dict[str, str]
    extra: dict = field(default_factory=dict)  # ingest bookkeeping (incremental state, dropped rows)

    @property
    def tables(self) -> dict[str, pa.Table]:
        """Whole tables (parts concatenated; columns unified where files differ)."""
        return {name: _concat([p.table for p in parts]) for name, parts in self.parts.items()}

    @property
    def files(self) -> dict[str, list[SourceFile]]:
        return {name: [p.file for p in parts] for name, parts in self.parts.items()}

    @property
    def rows(self) -> dict[str, int]:
        return {name: sum(p.table.num_rows for p in parts) for name, parts in self.parts.items()}

    def origin(self, table: str) -> str:
        """The file or folder a table came from, for error messages."""
        files = self.files[table]
        return files[0].uri if len(files) == 1 else files[0].uri.rsplit("/", 1)[0]

    def uri(self, table: str) -> str:
        """The table's origin as a URL (``file://`` for local paths), for lineage."""
        origin = self.origin(table)
        return origin if "://" in origin else Path(origin).resolve().as_uri()


def locate_tables(source: str | Path) -> dict[str, list[SourceFile]]:
    """Find each known table's files in ``source`` (sorted, so hashes repeat)."""
    return locate_source_files(open_source(source))


def load_telemetry(source: str | Path) -> Telemetry:
    """Read every table found in ``source``; a missing required table is an error."""
    src = open_source(source)
    files = locate_source_files(src)
    require_tables(src, files)
    parts: dict[str, list[TablePart]] = {}
    broken: list[RuleViolation] = []
    for name, table_files in files.items():
        for f in table_files:
            try:
                parts.setdefault(name, []).append(read_part(src, f))
            except DataValidationError as exc:
                broken += exc.violations
    if broken:
        raise DataValidationError(broken)
    return Telemetry(source=src.spec, parts=parts, sha256=hash_parts(parts))


def read_part(source: Source, file: SourceFile) -> TablePart:
    """Read, hash and parse one file; any unreadable shape is a named rule violation."""
    try:
        data = read_bytes(source, file)
    except OSError as exc:
        raise _violation(file, "readable file", str(exc)) from exc
    digest = hashlib.sha256(file.key.encode() + b"\0" + data).hexdigest()
    return TablePart(file, parse_bytes(file, data), digest)


def parse_bytes(file: SourceFile, data: bytes) -> pa.Table:
    """Parse a Parquet or CSV file's bytes (strictly: see the module docstring), with its Hive partition columns."""
    if not data:
        raise _violation(file, "non-empty file", "0 bytes")
    if file.suffix == ".parquet":
        try:
            table = pq.read_table(pa.BufferReader(data))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            raise _violation(file, "readable Parquet file (truncated or not Parquet?)", str(exc)) from exc
    else:
        table = _parse_csv(file, data)
    return apply_partitions(file.table, file.key, file.uri, table)


def _parse_csv(file: SourceFile, data: bytes) -> pa.Table:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        snippet = data[max(0, exc.start - 12) : exc.start + 12]
        raise _violation(file, "CSV encoded as UTF-8", f"byte {exc.start}: {snippet!r}") from exc
    header = text.split("\n", 1)[0]
    if "," not in header:
        found = [d for d in _DELIMITERS if d in header]
        if found:
            raise _violation(file, "CSV delimiter ','", f"header uses {found[0]!r}: {header[:80]!r}")
    schema = TABLES[file.table]
    # Timestamps are read as text, so that naive ones are reported as such by validation.
    types = {f.name: f.type for f in schema if not pa.types.is_nested(f.type) and not pa.types.is_timestamp(f.type)}
    types |= {f.name: pa.string() for f in schema if pa.types.is_timestamp(f.type)}
    try:
        table = pacsv.read_csv(
            pa.BufferReader(text.encode()),
            convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise _violation(file, "readable CSV with the contract's column types", str(exc)) from exc
    return _parse_list_columns(file, table)


def _parse_list_columns(file: SourceFile, table: pa.Table) -> pa.Table:
    """List columns in CSV are JSON text (``["a", "b"]``); parse them to lists."""
    schema = TABLES[file.table]
    for f in schema:
        if pa.types.is_nested(f.type) and f.name in table.column_names:
            raw = table[f.name].to_pylist()
            try:
                values = [json.loads(v) if isinstance(v, str) else v for v in raw]
                column = pa.array(values, type=f.type)
            except (ValueError, pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                bad = next((v for v in raw if not _is_json_list(v)), raw[0] if raw else None)
                raise _violation(file, f"JSON list in CSV column {f.name!r}", repr(bad), column=f.name) from exc
            table = table.set_column(table.column_names.index(f.name), f.name, column)
    return table


def _is_json_list(value: object) -> bool:
    try:
        return value is None or isinstance(json.loads(value), list)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _violation(file: SourceFile, rule: str, example: str, column: str | None = None) -> DataValidationError:
    first = example.splitlines()[0][:300] if example else ""
    return DataValidationError([RuleViolation(file.table, column, rule, [first], file=file.uri)])


def require_tables(src: Source, files: dict[str, list[SourceFile]]) -> None:
    """Every required table has at least one file, else one violation per missing table."""
    missing = [t for t in REQUIRED_TABLES if t not in files]
    if missing:
        raise DataValidationError(
            [
                RuleViolation(t, None, "required table present", [f"{t}.parquet", f"{t}.csv", f"{t}/"], file=src.spec)
                for t in missing
            ]
        )


def hash_parts(parts: dict[str, list[TablePart]]) -> dict[str, str]:
    """sha256 per table over its files' digests, in key order."""
    out = {}
    for name, table_parts in sorted(parts.items()):
        h = hashlib.sha256()
        for p in sorted(table_parts, key=lambda p: p.file.key):
            h.update(p.sha256.encode())
        out[name] = h.hexdigest()
    return out


def _concat(tables: list[pa.Table]) -> pa.Table:
    if len(tables) == 1:
        return tables[0]
    try:
        return pa.concat_tables(tables)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.concat_tables(tables, promote_options="permissive")


def conform_tables(tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
    """Cast validated tables to their contract schemas (column order and types)."""
    out = {}
    for name, table in tables.items():
        schema = TABLES[name]
        out[name] = with_optional_columns(name, table).select(schema.names).cast(schema)
    return out


def snapshot_id(sha256: dict[str, str]) -> str:
    """One id for a whole input snapshot: the sha256 of the per-table digests."""
    return hashlib.sha256(json.dumps(sha256, sort_keys=True).encode()).hexdigest()
