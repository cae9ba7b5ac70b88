"""The pyarrow step of validation: schema, timezone-awareness and finite numbers, per file.

It runs before Great Expectations so that GE only ever sees well-typed frames, and it judges
what GE cannot see once the data is in pandas: naive timestamps (pandas would silently take
them as UTC), and NaN or infinities (GE treats NaN as missing and skips it).
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from policies.schema import TABLES, with_optional_columns
from tasks.validation.rules import MAX_EXAMPLES, jsonable, result

__all__ = ["check_schema", "finite_row_failures", "CAST_ERRORS"]

CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)
_CAST_PROBES = 2000  # distinct values cast one by one to find examples of an uncastable column
_OFFSET = re.compile(r"(Z|[+-]\d\d(:?\d\d)?)$")
TZ_RULE = "schema: timezone-aware timestamps (UTC offset required)"


def check_schema(name: str, table: pa.Table, file: str | None = None) -> tuple[pa.Table | None, list[dict]]:
    """Cast ``table`` to its contract: the cast table (None if anything broke) and the results."""
    if name not in TABLES:
        return None, [result("schema", f"schema: unknown table (known: {', '.join(TABLES)})", None, False, file=file)]
    schema = TABLES[name]
    table = with_optional_columns(name, table)
    present = set(table.column_names)
    has = f"file has: {', '.join(table.column_names)}"[:200]
    broken = [
        result("schema", "schema: missing column", c, False, None, [has], file=file)
        for c in schema.names
        if c not in present
    ]
    broken += [
        result("schema", "schema: unexpected column", c, False, None, jsonable(table[c][:5].to_pylist()), file=file)
        for c in table.column_names
        if c not in schema.names
    ]
    columns = []
    for field in schema:
        if field.name not in table.column_names:
            continue
        column = table[field.name]
        naive = _naive_examples(column, field.type)
        if naive:
            broken.append(result("schema", TZ_RULE, field.name, False, None, naive, file=file))
            continue
        try:
            # The same safe cast as policies.telemetry.ingest.conform_tables: what passes here conforms there.
            column = pc.cast(column, field.type)
        except CAST_ERRORS:
            rule = f"schema: type {column.type} not castable to {field.type}"
            broken.append(
                result("schema", rule, field.name, False, None, _uncastable_values(column, field.type), file=file)
            )
            continue
        if not field.nullable and column.null_count:
            rows = pc.indices_nonzero(pc.is_null(column).combine_chunks())[:MAX_EXAMPLES].to_pylist()
            rule = "schema: null in non-nullable column"
            broken.append(
                result("schema", rule, field.name, False, column.null_count, [f"row {i}" for i in rows], file=file)
            )
        columns.append(column)
    if broken:
        return None, broken
    ok = result("schema", "schema: columns, types and nulls match", None, True, 0, file=file)
    return pa.Table.from_arrays(columns, schema=schema), [ok]


def finite_row_failures(table: pa.Table) -> dict[tuple[str, str], tuple[np.ndarray, list]]:
    """Rows with NaN or ±inf in a float column: {(rule, column): (row mask, examples)}."""
    out = {}
    for field in table.schema:
        if pa.types.is_floating(field.type):
            col = table[field.name]
            bad = pc.fill_null(pc.invert(pc.is_finite(col)), False)
            mask = (
                bad.to_numpy(zero_copy_only=False)
                if isinstance(bad, pa.Array)
                else np.asarray(bad.combine_chunks().to_numpy(zero_copy_only=False), dtype=bool)
            )
            if mask.any():
                values = pc.filter(col, bad)[:MAX_EXAMPLES].to_pylist()
                out[("finite number (no NaN, no ±inf)", field.name)] = (mask, [repr(v) for v in values])
    return out


def _naive_examples(column: pa.ChunkedArray, target: pa.DataType) -> list[object]:
    """Examples of timestamps without a zone, when the contract wants zone-aware ones."""
    if not (pa.types.is_timestamp(target) and target.tz):
        return []
    if pa.types.is_timestamp(column.type):
        return [] if column.type.tz else [str(v) for v in column.drop_null()[:MAX_EXAMPLES].to_pylist()]
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        values = column.drop_null().unique()[:_CAST_PROBES].to_pylist()
        return [v for v in values if not _OFFSET.search(v.strip())][:MAX_EXAMPLES]
    return []


def _uncastable_values(column: pa.ChunkedArray, target: pa.DataType) -> list[object]:
    """A few values that do not cast (the first values when the types cannot cast at all)."""
    try:
        candidates = pc.unique(column)
    except CAST_ERRORS:
        candidates = column.combine_chunks()
    found: list[object] = []
    for i in range(min(len(candidates), _CAST_PROBES)):
        try:
            pc.cast(candidates[i : i + 1], target)
        except CAST_ERRORS:
            found.append(jsonable(candidates[i].as_py()))
            if len(found) == MAX_EXAMPLES:
                break
    return found
