"""How parts become the frames Great Expectations sees, and how its answers go back to files.

GE 1.24 costs 0.1-0.2 s per ``ValidationDefinition.run`` whatever the row count (metric
graph, pydantic configs, storing the result), so running each suite once per day file spent
~13 s of the 87-file benchmark on fixed cost. Consecutive files of one table are therefore
validated together, in batches of up to :data:`BATCH_ROWS` rows: every row still goes through
every expectation, and the unexpected row indices GE returns (COMPLETE results) map each
failure back to the file holding the row, so counts, examples, quarantine and messages stay
per file. Batches are used only for suites where they cannot change an answer
(:func:`batch_safe`).
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Number

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tasks.validation.rules import ROW_LEVEL_TYPES, dedupe

__all__ = ["BATCH_ROWS", "batch_safe", "plan_batches", "split_results", "frames_for", "to_pandas"]

# Rows per GE run: large enough that GE's fixed cost is small against the rows' cost, small
# enough that the frame and GE's intermediate columns stay a few hundred MB (flat memory).
# Measured on the 87-day benchmark (validation only): 0.5M rows 4.3 s, 1M 3.8 s, 2M 3.9 s
# (+120 MB peak), 4M 4.7 s (+590 MB).
BATCH_ROWS = 1_000_000
_UNIQUE_TYPES = ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique")
_ROW_COUNT = "expect_table_row_count_to_be_between"
_PARTIAL = 20  # examples per file taken from GE's unexpected values, as its partial_unexpected_count


def batch_safe(expectations: Sequence[dict]) -> bool:
    """Whether checking several files in one frame gives each file the answer it gets alone.

    True when every expectation judges rows one by one (without ``mostly``: a share over a
    batch is not a share per file), or is a uniqueness rule (a batch sees every repeat a single
    file shows, and repeats across its files besides), or asks for at least one row and no
    maximum (empty files are never batched). Anything else (means, row-count ranges,
    ``mostly``) is checked file by file.
    """
    for exp in expectations:
        kind, kw = exp["type"], exp.get("kwargs") or {}
        if kind in ROW_LEVEL_TYPES or kind in _UNIQUE_TYPES:
            if kw.get("mostly") not in (None, 1, 1.0):
                return False
        elif kind == _ROW_COUNT:
            low = kw.get("min_value")
            if kw.get("max_value") is not None or not (low is None or (isinstance(low, Number) and low <= 1)):
                return False
        else:
            return False
    return True


def plan_batches(rows: Sequence[int], limit: int) -> list[list[int]]:
    """Indices of consecutive parts to check together: up to ``limit`` rows, empty parts alone.

    ``limit`` 0 checks every part alone. A part larger than ``limit`` is a batch of its own.
    """
    out: list[list[int]] = []
    current: list[int] = []
    total = 0
    for i, n in enumerate(rows):
        if current and (n == 0 or limit <= 0 or total + n > limit):
            out.append(current)
            current, total = [], 0
        current.append(i)
        total += n
        if n == 0:
            out.append(current)
            current, total = [], 0
    if current:
        out.append(current)
    return out


def split_results(results: list[dict], sizes: Sequence[int], files: Sequence[str | None]) -> list[list[dict]]:
    """Per part, the batch's results seen from that part's rows (``_rows``/``_values`` become ``_mask``).

    A failure GE gave row indices for counts, in each file, the rows of that file, with that
    file's own unexpected values as examples (GE returns the first 200 values); a file with
    none passes that rule. Row-level
    failures carry the file's bad-row mask for quarantine. A failure without row indices
    (an exception, a missing reference table) is reported once, naming the batch's files.
    """
    starts = np.cumsum([0, *sizes])
    out: list[list[dict]] = [[] for _ in sizes]
    for r in results:
        rows, values = r.pop("_rows", None), r.pop("_values", None)
        if r["success"] or rows is None or not len(rows):
            if r["success"]:
                for k, file in enumerate(files):
                    out[k].append({**r, "file": file})
            else:
                out[0].append({**r, "file": _batch_name(files)})
            continue
        rows = np.asarray(rows, dtype=np.int64)
        owner = np.searchsorted(starts, rows, side="right") - 1
        for k, file in enumerate(files):
            mine = np.flatnonzero(owner == k)
            if not mine.size:
                out[k].append({**r, "file": file, "success": True, "unexpected_count": 0, "examples": []})
                continue
            # GE keeps at most 200 unexpected values (all indices): a file past them shows none, but
            # the first file that broke a rule, the one messages name, always holds the first values.
            examples = (
                dedupe([values[i] for i in mine[:_PARTIAL] if i < len(values)]) if values is not None else r["examples"]
            )
            part = {**r, "file": file, "unexpected_count": int(mine.size), "examples": examples}
            if r["level"] == "row":
                mask = np.zeros(sizes[k], dtype=bool)
                mask[rows[mine] - starts[k]] = True
                part["_mask"] = mask
            out[k].append(part)
    return out


def _batch_name(files: Sequence[str | None]) -> str | None:
    named = [str(f) for f in files if f]
    if len(named) <= 1:
        return named[0] if named else None
    return f"{named[0]} (and {len(named) - 1} more files checked with it)"


def frames_for(name: str, table: pa.Table) -> dict[str, pd.DataFrame]:
    """The table's own frame (without list columns) plus one exploded frame per list column."""
    lists = [f for f in table.schema if pa.types.is_list(f.type)]
    frames = {name: to_pandas(table.drop_columns([f.name for f in lists]))}
    key = table.column_names[0]
    for field in lists:
        column = table[field.name].combine_chunks()
        values = pc.list_flatten(column)
        derived = {key: pc.take(table[key], pc.list_parent_indices(column))}
        if pa.types.is_struct(values.type):  # workloads.risks -> risks.depends_on, risks.cost_per_hour
            derived |= {f"{field.name}.{sub.name}": pc.struct_field(values, [i]) for i, sub in enumerate(values.type)}
        else:
            derived[field.name] = values
        frame = to_pandas(pa.table(derived))
        frame.index = pc.list_parent_indices(column).to_numpy()  # unexpected rows map back to the parent row
        frames[f"{name}.{field.name}"] = frame
    return frames


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """The frame GE sees: strings as categoricals, timestamps as naive UTC.

    Categoricals were measured fastest for GE 1.24 (pandas 3's default ``str`` is ~1.4x and
    ``ArrowDtype`` ~10x slower). Timestamps are UTC by contract; GE reads tz-aware columns
    through ``Series.values``, which pandas 3.1 deprecates with a warning per expectation.
    GE 1.24 compares ranges vectorised only for ``datetime64[ns]``, ``int64`` and ``float64``
    columns (anything else goes value by value through ``Series.map``, ~40x slower), so
    timestamps become ns (when in range) and small integers int64.
    """
    for i, field in enumerate(table.schema):
        if pa.types.is_string(field.type):
            table = table.set_column(i, field.name, pc.dictionary_encode(table[i]))
        elif pa.types.is_timestamp(field.type):
            try:
                column = pc.cast(table[i], pa.timestamp("ns"))
            except pa.ArrowInvalid:  # beyond 2262: keep the unit (slower path, same answer)
                column = pc.cast(table[i], pa.timestamp(field.type.unit))
            table = table.set_column(i, field.name, column)
        elif pa.types.is_integer(field.type) and field.type != pa.int64():
            table = table.set_column(i, field.name, pc.cast(table[i], pa.int64()))
    return table.to_pandas()
