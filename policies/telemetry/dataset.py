"""Any telemetry table of a source as one ``pyarrow.dataset.Dataset`` (for scans, filters, DuckDB, Polars).

The pipeline reads a table file by file (:mod:`policies.telemetry.ingest`: one part per file,
hashed and validated); people exploring a data lake want the whole table as a dataset instead.
:func:`table_dataset` gives it over the same files, on the same filesystem (local or any fsspec
URL, wrapped for pyarrow), Parquet or CSV, with Hive partition folders read as typed columns:
keys that are contract columns get the contract's type, other keys stay strings.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
from pyarrow.fs import FSSpecHandler, PyFileSystem

from policies.errors import DataValidationError, RuleViolation
from policies.schema import TABLES
from policies.telemetry.partitions import partition_values
from policies.telemetry.sources import locate_source_files, open_source

__all__ = ["table_dataset"]


def table_dataset(source: str | Path, table: str) -> ds.Dataset:
    """``table``'s files in ``source`` as one dataset (partition columns typed; see the module doc)."""
    src = open_source(source)
    files = locate_source_files(src).get(table)
    if not files:
        raise DataValidationError([RuleViolation(table, None, "table present", [f"{table}/"], file=src.spec)])
    suffixes = {f.suffix for f in files}
    if len(suffixes) != 1:
        raise DataValidationError(
            [RuleViolation(table, None, "one file format per table", sorted(suffixes), file=src.spec)]
        )
    contract = TABLES[table]
    keys = dict.fromkeys(k for f in files for k, _ in partition_values(f.key))
    partitioning = None
    if keys:
        fields = [contract.field(k) if k in contract.names else pa.field(k, pa.string()) for k in keys]
        partitioning = ds.partitioning(pa.schema(fields), flavor="hive")
    if suffixes == {".csv"}:
        plain = {f.name: f.type for f in contract if not pa.types.is_nested(f.type) and f.name not in keys}
        fmt = ds.CsvFileFormat(convert_options=pacsv.ConvertOptions(column_types=plain, strings_can_be_null=True))
    else:
        fmt = ds.ParquetFileFormat()
    first = files[0]
    base = first.path[: first.path.rindex(first.key)] + table if keys else None
    return ds.dataset(
        [f.path for f in files],
        filesystem=PyFileSystem(FSSpecHandler(src.fs)),
        format=fmt,
        partitioning=partitioning,
        partition_base_dir=base,
    )
