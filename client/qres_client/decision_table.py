"""The decision table of a verified bundle, read and checked with pyarrow kernels.

Load time is O(scenarios), not O(rows): every check over the rows (schema, nulls, one
contiguous run of rows per scenario, the same sets on every row of a scenario, no workload
twice in a scenario) runs as a pyarrow kernel, and Python only touches one value per
scenario. pyarrow and the standard library only (no pandas is imported, on purpose).
"""

from __future__ import annotations

import array
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from qres_client.errors import BundleVerificationError
from qres_client.schema import DECISIONS_SHEDDING

__all__ = [
    "EMPTY",
    "SET_COLUMNS",
    "ACTION_COLUMNS",
    "bad_table",
    "read_decisions",
    "read_parquet",
    "float64_view",
    "scenario_runs",
    "check_unique_workloads",
    "scenario_sets",
]

EMPTY: frozenset[str] = frozenset()


def bad_table(where: str, what: str) -> BundleVerificationError:
    return BundleVerificationError(f"{where}: {what}; republish the bundle")


SET_COLUMNS = ("down", "degraded", "effective_down")
ACTION_COLUMNS = ("workload_id", "admit", "rank")


def read_decisions(data: bytes, where: str) -> pa.Table:
    """The decision table, with keys, workload ids and set members read as dictionaries.

    ParquetFile, not read_table: read_table goes through pyarrow.dataset, which imports
    pandas when it is installed; a runtime service should not pay for that. The bytes are
    already in memory (and verified): a zero-copy BufferReader, no pre-buffering, one
    thread. Reading the string columns as dictionaries (as they are stored) skips decoding
    200,000 repeated strings; benchmarks/client.py measures these choices side by side.
    """
    try:
        got = [(f.name, f.type) for f in pq.ParquetFile(pa.BufferReader(data)).schema_arrow]
        want = [(f.name, f.type) for f in DECISIONS_SHEDDING]
        if got[: len(want)] != want:
            raise bad_table(where, f"columns {got} do not start with the shedding schema {want}")
        names = [n for n, _ in got]
        if len(set(names)) != len(names):
            raise bad_table(where, f"column names {names} repeat")
        table = read_parquet(data, dictionaries=True)
    except BundleVerificationError:
        raise
    except Exception as exc:  # pyarrow raises several types for a broken file
        raise bad_table(where, f"not readable as Parquet ({exc})") from exc
    nulls = [c for c in DECISIONS_SHEDDING.names if table.column(c).null_count]
    nulls += [c for c in SET_COLUMNS if pc.list_flatten(table.column(c)).null_count]
    if nulls:
        raise bad_table(where, f"null values in column(s) {nulls}")
    return table


def read_parquet(
    data: bytes, *, dictionaries: bool = True, pre_buffer: bool = False, use_threads: bool = False
) -> pa.Table:
    """Read verified bytes (the options are parameters so the benchmark can compare them)."""
    read_dictionary = None
    if dictionaries:
        read_dictionary = ["scenario_key", "workload_id"]
        if pq.ParquetFile(pa.BufferReader(data)).metadata.num_row_groups <= 1:
            # pyarrow reads list<dictionary> from one row group only ("Nested data
            # conversions not implemented for chunked array outputs" otherwise).
            read_dictionary += [f"{c}.list.element" for c in SET_COLUMNS]
    pf = pq.ParquetFile(pa.BufferReader(data), pre_buffer=pre_buffer, read_dictionary=read_dictionary)
    return pf.read(use_threads=use_threads)


def float64_view(values: pa.Array) -> memoryview:
    """The values of a float64 array without nulls, as a memoryview (no Python floats made)."""
    if len(values) == 0:
        return memoryview(b"").cast("d")
    return memoryview(values.buffers()[1]).cast("d")[values.offset : values.offset + len(values)]


def _strings(values: pa.Array) -> list[str]:
    """A string or dictionary<string> array as Python strings (one object per distinct name)."""
    if pa.types.is_dictionary(values.type):
        names = values.dictionary.to_pylist()
        return [names[i] for i in values.indices.to_pylist()]
    return values.to_pylist()


def _int_array(values: Sequence[int]) -> pa.Array:
    # pa.array(list) and pa.scalar(int) ask pyarrow's pandas shim whether their argument
    # is a pandas object, which imports pandas when installed; building from a buffer does
    # not (so scalars for kernels are taken from such an array, too).
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(array.array("q", values))])


@dataclass(frozen=True)
class _Runs:
    """The scenarios' row ranges: scenario ``n`` is rows ``starts[n]:stops[n]``."""

    keys: list[str]
    starts: list[int]
    stops: list[int]
    run_ends: pa.Array  # int32, = stops

    def per_row(self, per_run: pa.Array) -> pa.Array:
        """Repeat one value per scenario over that scenario's rows (a pyarrow kernel)."""
        # from_buffers, not from_arrays: from_arrays asks pyarrow's pandas shim about its
        # arguments, which imports pandas when it is installed.
        length = self.stops[-1] if self.stops else 0
        encoded = pa.RunEndEncodedArray.from_buffers(
            pa.run_end_encoded(self.run_ends.type, per_run.type), length, [None], 0, children=[self.run_ends, per_run]
        )
        return pc.run_end_decode(encoded)


def scenario_runs(table: pa.Table, where: str) -> _Runs:
    """Group rows by scenario with run-end encoding; each scenario's rows must be contiguous."""
    column = table.column("scenario_key").combine_chunks()
    encoded = pc.run_end_encode(column.indices, run_end_type=pa.int32())
    keys = _strings(pa.DictionaryArray.from_arrays(encoded.values, column.dictionary))
    if pc.count_distinct(encoded.values).as_py() != len(keys):  # a key in two runs: find it
        seen: set[str] = set()
        repeated = next(k for k in keys if k in seen or seen.add(k))
        raise bad_table(where, f"rows of scenario {repeated!r} are not contiguous")
    stops = encoded.run_ends.to_pylist()
    return _Runs(keys, [0, *stops[:-1]], stops, encoded.run_ends)


def check_unique_workloads(table: pa.Table, runs: _Runs, where: str) -> None:
    """No workload twice in one scenario: (scenario number, workload code) pairs are distinct."""
    workload = table.column("workload_id").combine_chunks()
    scenario_no = runs.per_row(_int_array(range(len(runs.keys))))
    pairs = pc.add(
        pc.multiply(scenario_no, _int_array([max(1, len(workload.dictionary))])[0]),
        pc.cast(workload.indices, pa.int64()),
    )
    if pc.count_distinct(pairs).as_py() == table.num_rows:
        return
    ids = _strings(workload)
    for key, start, stop in zip(runs.keys, runs.starts, runs.stops):
        rows = ids[start:stop]
        if len(set(rows)) != len(rows):
            twice = next(w for i, w in enumerate(rows) if w in rows[:i])
            raise bad_table(where, f"scenario {key!r} lists workload {twice!r} twice")


def scenario_sets(table: pa.Table, runs: _Runs, where: str) -> dict[str, list[frozenset]]:
    """The down/degraded/effective_down sets of each scenario, checked to repeat on every row.

    The check runs in pyarrow (each row against its scenario's first row, one ``equals``)
    so that large effective sets do not cost a Python conversion per row.
    """
    firsts = _int_array(runs.starts)
    first_of_row = runs.per_row(firsts)
    out = {}
    for c in SET_COLUMNS:
        column = table.column(c).combine_chunks()
        if len(column.flatten()) == 0:  # every list empty (degraded, usually): nothing to compare
            out[c] = [EMPTY] * len(runs.keys)
            continue
        if not column.take(first_of_row).equals(column):  # rare: find the culprit in Python
            cells = column.to_pylist()
            for key, start, stop in zip(runs.keys, runs.starts, runs.stops):
                if any(set(cells[i]) != set(cells[start]) for i in range(start, stop)):
                    raise bad_table(where, f"scenario {key!r} has different {c} lists across its rows")
        lists = column.take(firsts)
        names, offsets = _strings(lists.flatten()), lists.offsets.to_pylist()
        base = offsets[0]  # flatten() starts at the first offset
        out[c] = [frozenset(names[a - base : b - base]) if b > a else EMPTY for a, b in zip(offsets, offsets[1:])]
    return out
