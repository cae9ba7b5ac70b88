"""Parsing a verified shedding bundle into the lookup tables ``decide()`` uses.

Split from ``policies.client`` so the client module is about fetching, trust and
swapping; this one is about the decision table. See ``policies.client`` for the
matching rule (exact, closest cover, fallback). pyarrow and the standard library only.

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

from policies.errors import BundleVerificationError, QresError
from policies.schema import DECISIONS_SHEDDING

__all__ = ["Action", "Decision", "BundleNotLoadedError", "FALLBACK_KEY", "DECISIONS_FILE", "build_index"]

# Same string as policies.scenarios.FALLBACK_KEY (stdlib-only, but kept independent so
# the client never grows a dependency on the pipeline side).
FALLBACK_KEY = "fallback:all-down"
DECISIONS_FILE = "decisions.parquet"
_NO_EXTRAS: Mapping[str, Any] = MappingProxyType({})


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

    __slots__ = ("key", "down", "degraded", "effective_down", "covers_degraded", "admit_sum", "start", "stop",
                 "exact", "cover")

    def __init__(self, key: str, down: frozenset, degraded: frozenset, effective: frozenset, admit_sum: float,
                 start: int, stop: int) -> None:
        self.key, self.down, self.degraded, self.admit_sum = key, down, degraded, admit_sum
        self.effective_down = effective | down
        self.covers_degraded = self.effective_down | degraded
        self.start, self.stop = start, stop
        self.exact: Decision | None = None
        self.cover: Decision | None = None

    @property
    def order(self) -> tuple[int, float, str]:
        return (len(self.effective_down), self.admit_sum, self.key)


class _Index:
    """One loaded version of one policy, built once so that decide() only does lookups."""

    def __init__(self, policy: str, version: str, manifest: dict, scenarios: list[_Scenario],
                 columns: dict[str, pa.Array]) -> None:
        self.policy, self.version, self.manifest = policy, version, manifest
        self._columns = columns  # workload_id, admit, rank, then any extra columns, whole (sliced lazily)
        self.fallback = next(s for s in scenarios if s.key == FALLBACK_KEY)
        self.covers = tuple(sorted((s for s in scenarios if s.key != FALLBACK_KEY), key=lambda s: s.order))
        # Priority of exact keys: root sets, then effective sets (closest cover first on a
        # tie), then the fallback's own sets (only if it names any: an empty fallback must
        # never shadow ``normal``).
        exact: dict[tuple[frozenset, frozenset], _Scenario] = {}
        for s in self.covers:
            exact.setdefault((s.down, s.degraded - s.down), s)
        for s in self.covers:
            exact.setdefault((s.effective_down, s.degraded - s.effective_down), s)
        fb = self.fallback
        if fb.effective_down:
            exact.setdefault((fb.down, fb.degraded - fb.down), fb)
            exact.setdefault((fb.effective_down, fb.degraded - fb.effective_down), fb)
        self.exact = exact
        # Posting lists (closest cover first): the covers that contain a given service in
        # effective_down, resp. in effective_down | degraded. A cover must contain every
        # observed service, so scanning the shortest list of an observed one is enough.
        self.by_down: dict[str, list[_Scenario]] = {}
        self.by_degraded: dict[str, list[_Scenario]] = {}
        for s in self.covers:
            for m in s.effective_down:
                self.by_down.setdefault(m, []).append(s)
            for m in s.covers_degraded:
                self.by_degraded.setdefault(m, []).append(s)

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
        cols = [c[s.start:s.stop].to_pylist() for c in self._columns.values()]
        workload, admit, rank, extras = cols[0], cols[1], cols[2], cols[3:]
        names = tuple(self._columns)[3:]
        order = sorted(range(len(workload)), key=lambda i: (rank[i], workload[i]))
        actions = tuple(
            Action(workload[i], admit[i], rank[i],
                   MappingProxyType({n: c[i] for n, c in zip(names, extras)}) if names else _NO_EXTRAS)
            for i in order
        )
        s.cover = Decision(self.policy, self.version, s.key, False, actions)
        s.exact = Decision(self.policy, self.version, s.key, True, actions)
        return s

    def decide(self, down: frozenset[str], degraded: frozenset[str]) -> Decision:
        hit = self.exact.get((down, degraded))
        if hit is not None:
            d = hit.exact
            return d if d is not None else self._materialize(hit).exact
        for s in self._candidates(down, degraded):  # closest first: the first cover is the answer
            if down <= s.effective_down and degraded <= s.covers_degraded:
                break
        else:
            s = self.fallback
        d = s.cover
        return d if d is not None else self._materialize(s).cover


def _bad(where: str, what: str) -> BundleVerificationError:
    return BundleVerificationError(f"{where}: {what}; republish the bundle")


_SET_COLUMNS = ("down", "degraded", "effective_down")
_ACTION_COLUMNS = ("workload_id", "admit", "rank")


def _read_decisions(data: bytes, where: str) -> pa.Table:
    try:
        # ParquetFile, not read_table: read_table goes through pyarrow.dataset, which
        # imports pandas when it is installed; a runtime service should not pay for that.
        # The bytes are already in memory (and verified): a zero-copy BufferReader, no
        # pre-buffering, one thread (benchmarks/client.py measures the alternatives).
        pf = pq.ParquetFile(pa.BufferReader(data), pre_buffer=False)
        got = [(f.name, f.type) for f in pf.schema_arrow]
        want = [(f.name, f.type) for f in DECISIONS_SHEDDING]
        if got[:len(want)] != want:
            raise _bad(where, f"columns {got} do not start with the shedding schema {want}")
        names = [n for n, _ in got]
        if len(set(names)) != len(names):
            raise _bad(where, f"column names {names} repeat")
        table = pf.read(use_threads=False)
    except BundleVerificationError:
        raise
    except Exception as exc:  # pyarrow raises several types for a broken file
        raise _bad(where, f"not readable as Parquet ({exc})") from exc
    nulls = [c for c in DECISIONS_SHEDDING.names if table.column(c).null_count]
    nulls += [c for c in _SET_COLUMNS if pc.list_flatten(table.column(c)).null_count]
    if nulls:
        raise _bad(where, f"null values in column(s) {nulls}")
    return table


def _int_array(values: Sequence[int]) -> pa.Array:
    # pa.array(list) asks pyarrow's pandas shim whether the list is a Series, which
    # imports pandas when installed; building from a buffer does not.
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
        return pc.run_end_decode(pa.RunEndEncodedArray.from_arrays(self.run_ends, per_run))


def _scenario_runs(table: pa.Table, where: str) -> _Runs:
    """Group rows by scenario with run-end encoding; each scenario's rows must be contiguous."""
    encoded = pc.run_end_encode(table.column("scenario_key").combine_chunks(), run_end_type=pa.int32())
    keys = encoded.values.to_pylist()
    if pc.count_distinct(encoded.values).as_py() != len(keys):  # a key in two runs: find it
        seen: set[str] = set()
        repeated = next(k for k in keys if k in seen or seen.add(k))
        raise _bad(where, f"rows of scenario {repeated!r} are not contiguous")
    stops = encoded.run_ends.to_pylist()
    return _Runs(keys, [0, *stops[:-1]], stops, encoded.run_ends)


def _check_unique_workloads(table: pa.Table, runs: _Runs, where: str) -> None:
    """No workload twice in one scenario: (scenario number, workload code) pairs are distinct."""
    workload = pc.dictionary_encode(table.column("workload_id").combine_chunks())
    scenario_no = runs.per_row(_int_array(range(len(runs.keys))))
    pairs = pc.add(pc.multiply(scenario_no, max(1, len(workload.dictionary))), pc.cast(workload.indices, pa.int64()))
    if pc.count_distinct(pairs).as_py() == table.num_rows:
        return
    ids = workload.dictionary.to_pylist()
    codes = workload.indices.to_pylist()
    for key, start, stop in zip(runs.keys, runs.starts, runs.stops):
        if len(set(codes[start:stop])) != stop - start:
            twice = next(ids[c] for i, c in enumerate(codes[start:stop]) if c in codes[start:start + i])
            raise _bad(where, f"scenario {key!r} lists workload {twice!r} twice")


def _scenario_sets(table: pa.Table, runs: _Runs, where: str) -> dict[str, list]:
    """The down/degraded/effective_down lists of each scenario, checked to repeat on every row.

    The check runs in pyarrow (each row against its scenario's first row, one ``equals``)
    so that large effective sets do not cost a Python conversion per row.
    """
    firsts = _int_array(runs.starts)
    first_of_row = runs.per_row(firsts)
    out = {}
    for c in _SET_COLUMNS:
        column = table.column(c).combine_chunks()
        if not column.take(first_of_row).equals(column):  # rare: find the culprit in Python
            cells = column.to_pylist()
            for key, start, stop in zip(runs.keys, runs.starts, runs.stops):
                if any(set(cells[i]) != set(cells[start]) for i in range(start, stop)):
                    raise _bad(where, f"scenario {key!r} has different {c} lists across its rows")
        out[c] = column.take(firsts).to_pylist()
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
    # math.fsum (exact, order-independent) keeps the cover tie-break independent of row order.
    admit = table.column("admit").to_pylist()
    scenarios = [
        _Scenario(key, frozenset(down), frozenset(degraded), frozenset(effective), math.fsum(admit[start:stop]),
                  start, stop)
        for key, down, degraded, effective, start, stop in zip(
            runs.keys, sets["down"], sets["degraded"], sets["effective_down"], runs.starts, runs.stops)
    ]
    extra = table.column_names[len(DECISIONS_SHEDDING):]
    columns = {c: table.column(c).combine_chunks() for c in (*_ACTION_COLUMNS, *extra)}
    return _Index(policy, version, manifest, scenarios, columns)
