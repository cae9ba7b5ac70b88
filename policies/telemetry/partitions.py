"""Hive partition folders (``date=2026-08-01/``, ``service_id=api/``) as typed, checked columns.

Data lakes write a table as ``health_checks/<key>=<value>/.../part-0.parquet`` and leave the
partition value out of the file. Each file is read on its own (one part per file, as for flat
day files); this module turns the ``key=value`` folders of its path into what the file would
hold if it were self-contained:

- a key that is a column of the table's contract (``service_id``, ``probe``, ``status``, ...)
  becomes that column, cast to the contract's type (a value that does not cast is a rule
  violation); when the file already has the column, every row must agree with the folder;
- a time key (``date``/``dt``/``day`` = ``YYYY-MM-DD``, ``year``, ``month`` = ``M`` or
  ``YYYY-MM``, ``hour`` = ``0..23``) is checked against the table's time column (``ts`` for
  health checks, ``started_at`` for incidents, UTC): a row filed under the wrong day is a
  violation naming the file;
- any other key is ignored (it is no column of ours), and Hive's null marker
  ``__HIVE_DEFAULT_PARTITION__`` is a null.

Values are URL-unquoted as Hive and pyarrow escape them (``service_id=a%2Fb``).
"""

from __future__ import annotations

import re
from datetime import date
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from policies.errors import DataValidationError, RuleViolation
from policies.schema import TABLES

__all__ = ["is_partition_segment", "partition_values", "apply_partitions", "HIVE_NULL"]

HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
_SEGMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=[^/]*$")
_TIME_COLUMN = {"health_checks": "ts", "incidents": "started_at"}
_DAY_KEYS = ("date", "dt", "day")


def is_partition_segment(name: str) -> bool:
    return bool(_SEGMENT.match(name))


def partition_values(key: str) -> list[tuple[str, str | None]]:
    """``(name, value)`` of every ``name=value`` folder in a file key (``health_checks/date=.../x.parquet``)."""
    out = []
    for segment in key.split("/")[1:-1]:
        if is_partition_segment(segment):
            name, value = segment.split("=", 1)
            value = unquote(value)
            out.append((name, None if value == HIVE_NULL else value))
    return out


def apply_partitions(table_name: str, key: str, uri: str, table: pa.Table) -> pa.Table:
    """The file's table with its partition columns added (typed) and its partition values checked."""
    values = partition_values(key)
    if not values:
        return table
    schema = TABLES[table_name]
    broken: list[RuleViolation] = []
    for name, value in values:
        if name in schema.names:
            table = _as_column(table, schema.field(name), value, uri, broken)
        elif name in (*_DAY_KEYS, "year", "month", "hour") and table_name in _TIME_COLUMN:
            _check_time(table, _TIME_COLUMN[table_name], name, value, uri, broken)
    if broken:
        for v in broken:
            v.table = table_name
        raise DataValidationError(broken)
    return table


def _as_column(table: pa.Table, field: pa.Field, value: str | None, uri: str, broken: list) -> pa.Table:
    try:
        scalar = pa.scalar(value, pa.string()).cast(field.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        broken.append(RuleViolation("", field.name, f"partition value castable to {field.type}", [value], file=uri))
        return table
    if field.name not in table.column_names:
        return table.append_column(field.name, pa.array([scalar.as_py()] * table.num_rows, field.type))
    column = table[field.name]
    try:
        same = pc.equal(column.cast(field.type), scalar) if value is not None else pc.is_null(column)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return table  # the column's own type is wrong: validation names it
    bad = pc.invert(pc.fill_null(same, False))
    n = pc.sum(bad).as_py() or 0
    if n:
        examples = pc.unique(pc.filter(column, bad)).to_pylist()[:3]
        rule = f"{field.name} equal to its partition folder {field.name}={value}"
        broken.append(RuleViolation("", field.name, rule, examples, n, file=uri))
    return table


def _check_time(table: pa.Table, column: str, key: str, value: str | None, uri: str, broken: list) -> None:
    if column not in table.column_names or value is None:
        return
    try:
        stamps = pc.cast(pc.drop_null(table[column]), pa.timestamp("ms", tz="UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return  # unparseable or naive timestamps: the table's own rules report them
    t = pc.cast(stamps, pa.int64()).to_numpy(zero_copy_only=False).astype("datetime64[ms]")
    try:
        if key in _DAY_KEYS:
            got, want = t.astype("datetime64[D]"), np.datetime64(date.fromisoformat(value), "D")
        elif key == "year":
            got, want = t.astype("datetime64[Y]").astype(np.int64) + 1970, int(value)
        elif key == "month" and "-" in value:
            got, want = t.astype("datetime64[M]"), np.datetime64(value, "M")
        elif key == "month":
            got, want = t.astype("datetime64[M]").astype(np.int64) % 12 + 1, int(value)
        else:
            got, want = t.astype("datetime64[h]").astype(np.int64) % 24, int(value)
    except ValueError:
        broken.append(RuleViolation("", column, f"partition {key}=<a {key}>", [value], file=uri))
        return
    bad = got != want
    if bad.any():
        examples = [str(x) for x in t[bad][:3]]
        rule = f"{column} inside its partition {key}={value} (UTC)"
        broken.append(RuleViolation("", column, rule, examples, int(bad.sum()), file=uri))
