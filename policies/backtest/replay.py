r"""Backtest replay: held-out incidents, window by window, every policy under the same rules.

Each window of an incident has a *true* state (the hysteresis-filtered state of every
service: flaps removed, runs back-dated to their start) and an *observed* state, the true
state ``delay_windows`` earlier: hysteresis accepts a change only once it has lasted k
windows, so a runtime that follows it learns of the change k - 1 windows late. Every
adaptive policy sees only the observed state (``degraded`` before ``down`` included), one
window at a time (:mod:`policies.backtest.policies`), so how long an outage lasts and what
fails next are revealed minute by minute.

Every policy says what it *intends* (admitted levels) and in which priority order it would
serve under overload; the world then *realizes* it: workloads that cannot run give nothing
and take no capacity, and when the intended demand exceeds the true capacity the runtime
serves in the policy's priority order until the capacity runs out. The value of a window is
:func:`~policies.shedding.problem.shedding_objective` of the realized levels on the true
problem, minus the switching cost (:mod:`policies.backtest.costs`) of every realized level
that changed since the window before; at the end of the incident each policy pays its way
back to its own normal decision. The hindsight oracle (:mod:`policies.backtest.oracle`) is
scored by the same rules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from policies.backtest.costs import SwitchCosts
from policies.backtest.policies import Decision, ReplayPolicy
from policies.backtest.standby import StandbyWorld
from policies.graph import close_down_set, hard_dependents, root_down_set
from policies.model.states import DEGRADED, DOWN, UP
from policies.scenarios.scenario_set import Scenario, scenario_key
from policies.shedding.policy import build_shedding_problems
from policies.shedding.problem import SheddingProblem, serve_in_order, shedding_objective

__all__ = [
    "Incident",
    "View",
    "find_incidents",
    "realize_levels",
    "StateCatalog",
    "PolicyRun",
    "Realizer",
    "replay_incident",
    "standby_arrays",
]


@dataclass(frozen=True)
class Incident:
    """Windows ``[start_window, end_window)`` around one outage (padded for the recovery delay)."""

    number: int
    start_window: int
    end_window: int
    outage_windows: int
    services: tuple[str, ...]  # every service down or degraded at some point


@dataclass(frozen=True)
class View:
    """A state as a policy sees it: effective down set, degraded set and its shedding problem."""

    key: str
    down: frozenset[str]
    degraded: frozenset[str]
    problem: SheddingProblem


def find_incidents(
    states: np.ndarray,
    services: Sequence[str],
    *,
    first_window: int = 0,
    merge_gap_windows: int = 10,
    pad_windows: int = 1,
) -> list[Incident]:
    """Maximal runs of windows where some service is not up, starting at or after ``first_window``.

    Runs closer than ``merge_gap_windows`` are one incident (a flapping recovery is not a new
    outage); each incident is extended by ``pad_windows`` after its last bad window so that
    the observed state's delayed return to normal is paid for. An outage already under way
    at ``first_window`` belongs to the past and is skipped.
    """
    busy = np.asarray(states != UP).any(axis=1)
    idx = np.flatnonzero(busy)
    if idx.size == 0:
        return []
    cut = np.flatnonzero(np.diff(idx) > merge_gap_windows)
    starts, ends = idx[np.r_[0, cut + 1]], idx[np.r_[cut, idx.size - 1]] + 1
    out, n_w = [], states.shape[0]
    for s, e in zip(starts.tolist(), ends.tolist()):
        if s < first_window or (s == first_window and first_window > 0 and busy[first_window - 1]):
            continue
        cols = np.flatnonzero((states[s:e] != UP).any(axis=0))
        out.append(
            Incident(len(out) + 1, s, min(e + pad_windows, n_w), int(busy[s:e].sum()), tuple(services[c] for c in cols))
        )
    return out


def realize_levels(problem: SheddingProblem, intended: np.ndarray, priority: Sequence[int]) -> np.ndarray:
    """What actually runs: unrunnable work gives nothing; overload is served in ``priority`` order."""
    return serve_in_order(problem, intended, priority)


class StateCatalog:
    """State rows -> :class:`View`, with every distinct state's problem built once."""

    def __init__(self, tables: Mapping[str, pa.Table], services: Sequence[str], *, levels: int = 4) -> None:
        self._tables, self._names, self._levels = tables, np.asarray(services, dtype=object), levels
        deps = tables["dependencies"]
        self._dependents = hard_dependents(
            zip(*(deps.column(c).to_pylist() for c in ("service_id", "depends_on", "hard")))
        )
        self.views: dict[bytes, View] = {}

    def views_of(self, rows: np.ndarray) -> list[View]:
        """One view per row of ``rows`` (shape [n, services]), building new problems in one batch."""
        rows = np.ascontiguousarray(rows, dtype=np.int8)
        new: dict[bytes, Scenario] = {}
        for row in np.unique(rows, axis=0):
            b = row.tobytes()
            if b in self.views or b in new:
                continue
            observed = frozenset(self._names[row == DOWN])
            root = root_down_set(observed, self._dependents)
            eff = close_down_set(observed, self._dependents)
            degraded = frozenset(self._names[row == DEGRADED]) - eff
            new[b] = Scenario(
                scenario_key(root, degraded),
                tuple(sorted(root)),
                tuple(sorted(degraded)),
                tuple(sorted(eff)),
                0.0,
                0.0,
                "observed",
            )
        if new:
            t = self._tables
            problems = build_shedding_problems(
                t["services"], t["dependencies"], t["workloads"], list(new.values()), levels=self._levels
            )
            for (b, s), p in zip(new.items(), problems):
                self.views[b] = View(s.key, frozenset(s.effective_down), frozenset(s.degraded), p)
        return [self.views[r.tobytes()] for r in rows]


@dataclass
class PolicyRun:
    """One policy over one incident: per window what it intended, what ran, value and switching cost."""

    values: np.ndarray  # value per hour of the realized levels, per window
    switch: np.ndarray  # switching cost paid in each window (the last includes the way back to normal)
    realized: list[np.ndarray]
    intended: list[np.ndarray]
    normal: Decision  # the decision in force before the incident (window -1)
    decisions: list[Decision] = field(repr=False)
    standby_value: np.ndarray | None = None  # value per hour served on standby, per window (None: no standby)
    standby_cost: np.ndarray | None = None  # the placement's cost per hour, per window (in ``values`` already)

    @property
    def changes(self) -> int:
        """Windows whose intended levels differ from the window before (the first against normal)."""
        prev, n = self.normal.levels, 0
        for k in self.intended:
            n += int(not np.array_equal(k, prev))
            prev = k
        return n

    @property
    def first_change(self) -> int | None:
        """The first window whose intended levels differ from the normal decision (None: never)."""
        return next((j for j, k in enumerate(self.intended) if not np.array_equal(k, self.normal.levels)), None)


class Realizer:
    """``realize_levels`` and the objective of (decision, true state) pairs, each computed once.

    With a :class:`~policies.backtest.standby.StandbyWorld`, a decision's standby placement serves
    what the primary cannot run, and the value is net of the placement's cost per hour.
    """

    def __init__(self, standby: StandbyWorld | None = None) -> None:
        self._memo: dict[tuple, tuple[np.ndarray, float]] = {}
        self._standby: dict[tuple, tuple[float, float]] = {}
        self.world = standby

    def _key(self, truth: View, d: Decision) -> tuple:
        return (d.levels.tobytes(), d.priority.tobytes(), d.standby, truth.key)

    def __call__(self, truth: View, d: Decision) -> tuple[np.ndarray, float]:
        key = self._key(truth, d)
        if key not in self._memo:
            k = realize_levels(truth.problem, d.levels, d.priority)
            served = cost = 0.0
            if d.standby and self.world is not None:
                k, served = self.world.serve(truth, k, d.priority, d.standby)
                cost = self.world.cost_per_h(d.standby)
            self._memo[key] = (k, shedding_objective(truth.problem, k) - cost)
            self._standby[key] = (served, cost)
        return self._memo[key]

    def standby(self, truth: View, d: Decision) -> tuple[float, float]:
        """Value per hour served on standby and the placement's cost per hour (after ``self(truth, d)``)."""
        return self._standby[self._key(truth, d)]


def replay_incident(
    policy: ReplayPolicy,
    truth: Sequence[View],
    observed: Sequence[View],
    normal: View,
    costs: SwitchCosts,
    realize: Realizer | None = None,
) -> PolicyRun:
    """Replay ``policy`` over one incident (see the module docstring for the rules)."""
    realize = realize or Realizer()
    policy.reset()
    d0 = policy.step(-1, normal)
    k0, _ = realize(normal, d0)
    prev, last = k0, (None, None)
    values, switch, realized, decisions, on_standby = [], [], [], [], []
    for t, (true, seen) in enumerate(zip(truth, observed, strict=True)):
        d = policy.step(t, seen)
        if last == (d, true.key):  # long outages: the same decision on the same state changes nothing
            k, c = prev, 0.0
        else:
            k, v = realize(true, d)
            c = costs.charge(prev, k)
            sb = realize.standby(true, d)
        values.append(v)
        on_standby.append(sb)
        switch.append(c)
        realized.append(k)
        decisions.append(d)
        prev, last = k, (d, true.key)
    switch_arr = np.asarray(switch, dtype=np.float64)
    if len(switch_arr):
        switch_arr[-1] += costs.charge(prev, k0)
    return PolicyRun(
        np.asarray(values, dtype=np.float64),
        switch_arr,
        realized,
        [d.levels for d in decisions],
        d0,
        decisions,
        *standby_arrays(on_standby, decisions),
    )


def standby_arrays(parts: Sequence[tuple[float, float]], decisions: Sequence[Decision]):
    """Per-window standby value and cost as arrays, or (None, None) when no decision held a placement."""
    if not any(d.standby for d in decisions):
        return None, None
    a = np.asarray(parts, dtype=np.float64).reshape(-1, 2)
    return a[:, 0].copy(), a[:, 1].copy()
