"""Parsing a verified shedding bundle into the lookup tables ``decide()`` uses.

Split from ``qres_client.client`` so the client module is about fetching, trust and
swapping; this one is about the decision table. See ``qres_client.client`` for the
matching rule (exact, then the runtime greedy of :mod:`qres_client.greedy` when the
bundle has fallback.json, closest cover, fallback). pyarrow and the standard library only.

Load time is O(scenarios), not O(rows): every check over the rows (schema, nulls, one
contiguous run of rows per scenario, the same sets on every row of a scenario, no
workload twice in a scenario) runs as a pyarrow kernel, and Python only touches one
value per scenario (its key, sets and admit sum). A scenario's :class:`Decision` and
its :class:`Action` tuple are built from its slice of the columns the first time
``decide()`` answers with it, then cached on the scenario. Two threads may both build
the same immutable decision on a first call; either result is correct, so no lock.

Decision tables of other policy families (``DECISIONS_STANDBY``, ``DECISIONS_ROUTING``)
start with exactly the shedding columns and add their own after them: those extra
columns are read too, and each action carries its row's values in ``Action.extras``
(a read-only mapping, empty for a plain shedding table).
"""

from __future__ import annotations

import array
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from qres_client.errors import BundleVerificationError, QresError
from qres_client.greedy import (
    DEFAULT_UNMATCHED,
    FALLBACK_FILE,
    GREEDY_KEY,
    UNMATCHED_RULES,
    RuntimeGreedy,
    parse_fallback,
)
from qres_client.schema import DECISIONS_SHEDDING

__all__ = [
    "Action",
    "Decision",
    "BundleNotLoadedError",
    "FALLBACK_KEY",
    "DECISIONS_FILE",
    "GREEDY_KEY",
    "UNMATCHED_RULES",
    "DEFAULT_UNMATCHED",
    "build_index",
]

# Same string as policies.scenarios.scenario_set.FALLBACK_KEY (stdlib-only, but kept independent so
# the client never grows a dependency on the pipeline side).
FALLBACK_KEY = "fallback:all-down"
DECISIONS_FILE = "decisions.parquet"
_NO_EXTRAS: Mapping[str, Any] = MappingProxyType({})
_EMPTY: frozenset[str] = frozenset()
_GREEDY_CACHE_MAX = 4096  # planned observed states kept per loaded version (cleared when full)


class BundleNotLoadedError(QresError, LookupError):
    """decide() was asked about a policy for which no verified bundle is loaded."""


@dataclass(frozen=True)
class Action:
    workload_id: str  # the subject of the action (a candidate or an endpoint in other families)
    admit: float  # share admitted, 0..1
    rank: int  # 1 = admit first, shed last
    # Columns after the shedding ones (other policy families), by name; compared, not hashed.
    extras: Mapping[str, Any] = field(default_factory=lambda: _NO_EXTRAS, hash=False)


@dataclass(frozen=True)
class Decision:
    policy: str
    version: str
    scenario: str  # key of the scenario whose plan this is
    exact: bool  # False when a covering scenario (or the fallback) answered
    actions: tuple[Action, ...]  # ordered by rank


class _Scenario:
    """One scenario's sets and row range; its decisions are filled in on first use."""

    __slots__ = (
        "key",
        "down",
        "degraded",
        "effective_down",
        "covers_degraded",
        "admit_sum",
        "start",
        "stop",
        "exact",
        "cover",
    )

    def __init__(
        self,
        key: str,
        down: frozenset,
        degraded: frozenset,
        effective: frozenset,
        admit_sum: float,
        start: int,
        stop: int,
    ) -> None:
        if effective == down:
            effective = down  # one object instead of two equal ones
        self.key, self.down, self.degraded, self.admit_sum = key, down, degraded, admit_sum
        # The unions are usually no-ops (effective_down holds down): skip allocating copies.
        self.effective_down = effective if down <= effective else effective | down
        self.covers_degraded = self.effective_down | degraded if degraded else self.effective_down
        self.start, self.stop = start, stop
        self.exact: Decision | None = None
        self.cover: Decision | None = None


class _Index:
    """One loaded version of one policy, built once so that decide() only does lookups."""

    def __init__(
        self,
        policy: str,
        version: str,
        manifest: dict,
        scenarios: list[_Scenario],
        columns: dict[str, pa.Array],
        greedy: RuntimeGreedy | None = None,
    ) -> None:
        self.policy, self.version, self.manifest = policy, version, manifest
        # The runtime greedy (fallback.json) and its plans per observed (down, degraded).
        self.greedy = greedy
        self._planned: dict[tuple[frozenset, frozenset], Decision] = {}
        # workload_id (as dictionary codes), admit, rank, then any extra columns; whole
        # columns, sliced per scenario on first use.
        workload = columns["workload_id"]
        self._workload_names = workload.dictionary.to_pylist()
        self._columns = {**columns, "workload_id": workload.indices}
        self.fallback = next(s for s in scenarios if s.key == FALLBACK_KEY)
        self.covers = tuple(
            sorted(
                (s for s in scenarios if s.key != FALLBACK_KEY),
                key=lambda s: (len(s.effective_down), s.admit_sum, s.key),
            )
        )
        # Priority of exact keys: root sets, then effective sets (closest cover first on a
        # tie), then the fallback's own sets (only if it names any: an empty fallback must
        # never shadow ``normal``).
        # Keyed degraded set -> down set -> scenario (not by (down, degraded) pairs: one
        # tuple per key would be 20,000 more objects to allocate and garbage-collect).
        exact: dict[frozenset, dict[frozenset, _Scenario]] = {}

        def add(down: frozenset, degraded: frozenset, s: _Scenario) -> None:
            rest = degraded - down if degraded else _EMPTY
            inner = exact.get(rest)
            if inner is None:
                exact[rest] = inner = {}
            inner.setdefault(down, s)

        for s in self.covers:
            add(s.down, s.degraded, s)
        for s in self.covers:
            add(s.effective_down, s.degraded, s)
        fb = self.fallback
        if fb.effective_down:
            add(fb.down, fb.degraded, fb)
            add(fb.effective_down, fb.degraded, fb)
        self.exact = exact
        # Posting lists (closest cover first): the covers that contain a given service in
        # effective_down, resp. in effective_down | degraded. A cover must contain every
        # observed service, so scanning the shortest list of an observed one is enough.
        self.by_down = _postings(self.covers, "effective_down")
        self.by_degraded = _postings(self.covers, "covers_degraded")

    def _candidates(self, down: frozenset[str], degraded: frozenset[str]) -> Sequence[_Scenario]:
        postings, observed = (self.by_down, down) if down else (self.by_degraded, degraded)
        if not observed:
            return self.covers
        best: Sequence[_Scenario] | None = None
        for m in observed:
            p = postings.get(m)
            if p is None:
                return ()  # a service no scenario has down: only the fallback covers it
            if best is None or len(p) < len(best):
                best = p
        return best

    def _materialize(self, s: _Scenario) -> _Scenario:
        """Build (once) the scenario's ranked actions and its two decisions from its rows."""
        cols = [c[s.start : s.stop].to_pylist() for c in self._columns.values()]
        names = self._workload_names  # workload_id is a dictionary: codes per row, names once
        workload, admit, rank, extras = [names[i] for i in cols[0]], cols[1], cols[2], cols[3:]
        names = tuple(self._columns)[3:]
        order = sorted(range(len(workload)), key=lambda i: (rank[i], workload[i]))
        actions = tuple(
            Action(
                workload[i],
                admit[i],
                rank[i],
                MappingProxyType({n: c[i] for n, c in zip(names, extras)}) if names else _NO_EXTRAS,
            )
            for i in order
        )
        s.cover = Decision(self.policy, self.version, s.key, False, actions)
        s.exact = Decision(self.policy, self.version, s.key, True, actions)
        return s

    def decide(self, down: frozenset[str], degraded: frozenset[str], unmatched: str = DEFAULT_UNMATCHED) -> Decision:
        """Exact match, else (per ``unmatched``, see qres_client.client) the runtime greedy or the closest cover."""
        by_down = self.exact.get(degraded)
        hit = by_down.get(down) if by_down is not None else None
        if hit is not None:
            d = hit.exact
            return d if d is not None else self._materialize(hit).exact
        if self.greedy is not None and unmatched == "greedy":
            return self._plan(down, degraded)
        for s in self._candidates(down, degraded):  # closest first: the first cover is the answer
            if down <= s.effective_down and degraded <= s.covers_degraded:
                break
        else:
            if self.greedy is not None and unmatched == "cover-then-greedy":
                return self._plan(down, degraded)
            s = self.fallback
        d = s.cover
        return d if d is not None else self._materialize(s).cover

    def _plan(self, down: frozenset[str], degraded: frozenset[str]) -> Decision:
        """The runtime greedy's plan of this observed state (cached; equal plans from two threads are fine)."""
        key = (down, degraded)
        d = self._planned.get(key)
        if d is None:
            actions = tuple(Action(w, admit, rank) for w, admit, rank in self.greedy.plan(down, degraded))
            d = Decision(self.policy, self.version, GREEDY_KEY, False, actions)
            if len(self._planned) >= _GREEDY_CACHE_MAX:
                self._planned.clear()
            self._planned[key] = d
        return d


def _postings(covers: Sequence[_Scenario], attribute: str) -> dict[str, list[_Scenario]]:
    """For each service, the covers (in order) whose ``attribute`` set contains it."""
    postings: dict[str, list[_Scenario]] = {}
    get = postings.get
    for s in covers:
        for m in getattr(s, attribute):
            p = get(m)
            if p is None:
                postings[m] = [s]
            else:
                p.append(s)
    return postings


def _bad(where: str, what: str) -> BundleVerificationError:
    return BundleVerificationError(f"{where}: {what}; republish the bundle")


_SET_COLUMNS = ("down", "degraded", "effective_down")
_ACTION_COLUMNS = ("workload_id", "admit", "rank")


def _read_decisions(data: bytes, where: str) -> pa.Table:
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
            raise _bad(where, f"columns {got} do not start with the shedding schema {want}")
        names = [n for n, _ in got]
        if len(set(names)) != len(names):
            raise _bad(where, f"column names {names} repeat")
        table = _read_parquet(data, dictionaries=True)
    except BundleVerificationError:
        raise
    except Exception as exc:  # pyarrow raises several types for a broken file
        raise _bad(where, f"not readable as Parquet ({exc})") from exc
    nulls = [c for c in DECISIONS_SHEDDING.names if table.column(c).null_count]
    nulls += [c for c in _SET_COLUMNS if pc.list_flatten(table.column(c)).null_count]
    if nulls:
        raise _bad(where, f"null values in column(s) {nulls}")
    return table


def _read_parquet(
    data: bytes, *, dictionaries: bool = True, pre_buffer: bool = False, use_threads: bool = False
) -> pa.Table:
    """Read verified bytes (the options are parameters so the benchmark can compare them)."""
    read_dictionary = None
    if dictionaries:
        read_dictionary = ["scenario_key", "workload_id"]
        if pq.ParquetFile(pa.BufferReader(data)).metadata.num_row_groups <= 1:
            # pyarrow reads list<dictionary> from one row group only ("Nested data
            # conversions not implemented for chunked array outputs" otherwise).
            read_dictionary += [f"{c}.list.element" for c in _SET_COLUMNS]
    pf = pq.ParquetFile(pa.BufferReader(data), pre_buffer=pre_buffer, read_dictionary=read_dictionary)
    return pf.read(use_threads=use_threads)


def _float64_view(values: pa.Array) -> memoryview:
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


def _scenario_runs(table: pa.Table, where: str) -> _Runs:
    """Group rows by scenario with run-end encoding; each scenario's rows must be contiguous."""
    column = table.column("scenario_key").combine_chunks()
    encoded = pc.run_end_encode(column.indices, run_end_type=pa.int32())
    keys = _strings(pa.DictionaryArray.from_arrays(encoded.values, column.dictionary))
    if pc.count_distinct(encoded.values).as_py() != len(keys):  # a key in two runs: find it
        seen: set[str] = set()
        repeated = next(k for k in keys if k in seen or seen.add(k))
        raise _bad(where, f"rows of scenario {repeated!r} are not contiguous")
    stops = encoded.run_ends.to_pylist()
    return _Runs(keys, [0, *stops[:-1]], stops, encoded.run_ends)


def _check_unique_workloads(table: pa.Table, runs: _Runs, where: str) -> None:
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
            raise _bad(where, f"scenario {key!r} lists workload {twice!r} twice")


def _scenario_sets(table: pa.Table, runs: _Runs, where: str) -> dict[str, list[frozenset]]:
    """The down/degraded/effective_down sets of each scenario, checked to repeat on every row.

    The check runs in pyarrow (each row against its scenario's first row, one ``equals``)
    so that large effective sets do not cost a Python conversion per row.
    """
    firsts = _int_array(runs.starts)
    first_of_row = runs.per_row(firsts)
    out = {}
    for c in _SET_COLUMNS:
        column = table.column(c).combine_chunks()
        if len(column.flatten()) == 0:  # every list empty (degraded, usually): nothing to compare
            out[c] = [_EMPTY] * len(runs.keys)
            continue
        if not column.take(first_of_row).equals(column):  # rare: find the culprit in Python
            cells = column.to_pylist()
            for key, start, stop in zip(runs.keys, runs.starts, runs.stops):
                if any(set(cells[i]) != set(cells[start]) for i in range(start, stop)):
                    raise _bad(where, f"scenario {key!r} has different {c} lists across its rows")
        lists = column.take(firsts)
        names, offsets = _strings(lists.flatten()), lists.offsets.to_pylist()
        base = offsets[0]  # flatten() starts at the first offset
        out[c] = [frozenset(names[a - base : b - base]) if b > a else _EMPTY for a, b in zip(offsets, offsets[1:])]
    return out


def build_index(policy: str, version: str, manifest: dict, files: dict[str, bytes]) -> _Index:
    """Parse a verified decision table into the lookup structures decide() uses."""
    where = f"{policy}/{version}/{DECISIONS_FILE}"
    if DECISIONS_FILE not in files:
        raise _bad(f"{policy}/{version}", f"no {DECISIONS_FILE} in the bundle")
    table = _read_decisions(files[DECISIONS_FILE], where)
    runs = _scenario_runs(table, where)
    if FALLBACK_KEY not in runs.keys:
        raise _bad(where, f"no {FALLBACK_KEY!r} scenario, so some observations would have no answer")
    _check_unique_workloads(table, runs, where)
    sets = _scenario_sets(table, runs, where)
    # math.fsum (exact, order-independent) keeps the cover tie-break independent of row order;
    # it reads the column's buffer through a memoryview rather than a 200,000-float list.
    admit = _float64_view(table.column("admit").combine_chunks())
    scenarios = [
        _Scenario(key, down, degraded, effective, math.fsum(admit[start:stop]), start, stop)
        for key, down, degraded, effective, start, stop in zip(
            runs.keys, sets["down"], sets["degraded"], sets["effective_down"], runs.starts, runs.stops
        )
    ]
    extra = table.column_names[len(DECISIONS_SHEDDING) :]
    columns = {c: table.column(c).combine_chunks() for c in (*_ACTION_COLUMNS, *extra)}
    # Bundles published before fallback.json (and other families) have none: the old rule then.
    greedy = (
        parse_fallback(files[FALLBACK_FILE], f"{policy}/{version}/{FALLBACK_FILE}") if FALLBACK_FILE in files else None
    )
    return _Index(policy, version, manifest, scenarios, columns, greedy)
