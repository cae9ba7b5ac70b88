"""Parsing a verified shedding bundle into the lookup tables ``decide()`` uses.

Split from ``qres_client.client`` so the client module is about fetching, trust and
swapping; this one is about answering. pyarrow and the standard library only.

How ``decide(down, degraded)`` picks a scenario (``degraded`` minus ``down`` is used):

1. **Exact**: a scenario whose root ``down`` set, or failing that whose ``effective_down``
   set (root causes plus everything they take down through hard dependencies), equals the
   observed down set, with an equal degraded set. Empty observation -> ``normal``.
2. **Runtime greedy** (default, ``unmatched="greedy"``; bundles with ``fallback.json``):
   otherwise the greedy plan of the observed state itself, computed here from the
   bundle's model (:mod:`qres_client.greedy`: close the down set over hard
   dependencies, shed what it blocks, minimum shares first, then by (value - risk) /
   demand while the capacity left lasts), scenario key ``greedy:observed``, ``exact``
   False; cached per observed state. It is what the greedy solver would publish for
   that state, so it is feasible under the same model. ``unmatched="cover-then-greedy"``
   tries step 3 first and uses the greedy only instead of step 4; ``unmatched="cover"``
   (and any bundle without fallback.json) keeps the old rule, steps 1, 3, 4. Measured
   on held-out incidents (docs/backtest.md): the greedy first keeps
   the most value, since a cover plans for more outage than was observed.
3. **Cover**: otherwise the most conservative scenario that covers the observation:
   its ``effective_down`` contains every observed down service and its
   ``effective_down | degraded`` contains every observed degraded one (a service the
   plan already treats as down covers one observed degraded). Among those, the closest
   cover wins: fewest ``effective_down`` members, then the smallest sum of ``admit``
   (the most cautious plan), then the scenario key.
4. **Fallback**: ``fallback:all-down`` covers everything (unknown service names too) and
   is the last resort, so a loaded client always answers. (An observation equal to the
   fallback's own non-empty sets is reported as an exact match of it.)

Where a second scenario has the same effective set as another, ties in step 1 are broken
the same way as in step 3.

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

import math
from collections.abc import Sequence
from types import MappingProxyType

import pyarrow as pa

from qres_client.bundle import DECISIONS_FILE
from qres_client.decision import NO_EXTRAS, Action, BundleNotLoadedError, Decision
from qres_client.decision_table import (
    ACTION_COLUMNS,
    EMPTY,
    bad_table,
    check_unique_workloads,
    float64_view,
    read_decisions,
    scenario_runs,
    scenario_sets,
)
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
_GREEDY_CACHE_MAX = 4096  # planned observed states kept per loaded version (cleared when full)


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
        self.extra_columns = tuple(self._columns)[3:]  # each action's extras, by name (e.g. act_after_s, hold_s)
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
            rest = degraded - down if degraded else EMPTY
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
                MappingProxyType({n: c[i] for n, c in zip(names, extras)}) if names else NO_EXTRAS,
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
            capped = "admit_max" in self.extra_columns  # an admission bundle: the live plan carries caps too
            rows = self.greedy.capped_plan(down, degraded) if capped else self.greedy.plan(down, degraded)
            actions = tuple(Action(*a) for a in rows)
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


def build_index(policy: str, version: str, manifest: dict, files: dict[str, bytes]) -> _Index:
    """Parse a verified decision table into the lookup structures decide() uses."""
    where = f"{policy}/{version}/{DECISIONS_FILE}"
    if DECISIONS_FILE not in files:
        raise bad_table(f"{policy}/{version}", f"no {DECISIONS_FILE} in the bundle")
    table = read_decisions(files[DECISIONS_FILE], where)
    runs = scenario_runs(table, where)
    if FALLBACK_KEY not in runs.keys:
        raise bad_table(where, f"no {FALLBACK_KEY!r} scenario, so some observations would have no answer")
    check_unique_workloads(table, runs, where)
    sets = scenario_sets(table, runs, where)
    # math.fsum (exact, order-independent) keeps the cover tie-break independent of row order;
    # it reads the column's buffer through a memoryview rather than a 200,000-float list.
    admit = float64_view(table.column("admit").combine_chunks())
    scenarios = [
        _Scenario(key, down, degraded, effective, math.fsum(admit[start:stop]), start, stop)
        for key, down, degraded, effective, start, stop in zip(
            runs.keys, sets["down"], sets["degraded"], sets["effective_down"], runs.starts, runs.stops
        )
    ]
    extra = table.column_names[len(DECISIONS_SHEDDING) :]
    columns = {c: table.column(c).combine_chunks() for c in (*ACTION_COLUMNS, *extra)}
    # Bundles published before fallback.json (and other families) have none: the old rule then.
    greedy = (
        parse_fallback(files[FALLBACK_FILE], f"{policy}/{version}/{FALLBACK_FILE}") if FALLBACK_FILE in files else None
    )
    return _Index(policy, version, manifest, scenarios, columns, greedy)
