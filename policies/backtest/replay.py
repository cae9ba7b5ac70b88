r"""Backtest replay: held-out incidents, window by window, against baselines and the oracle.

Each window of an incident has a *true* state (the hysteresis-filtered state of every
service: flaps removed, runs back-dated to their start) and an *observed* state, the true
state ``delay_windows`` earlier: hysteresis accepts a change only once it has lasted k
windows, so a runtime that follows it learns of the change k - 1 windows late. From the
true state comes the true shedding problem (capacity left, runnable workloads, risk).

Every policy says what it *intends* (admitted levels) and in which priority order it would
serve under overload; the world then *realizes* it: workloads that cannot run give nothing
and take no capacity, and when the intended demand exceeds the true capacity the runtime
serves in the policy's priority order until the capacity runs out. The value of a window is
:func:`~policies.shedding.problem.shedding_objective` of the realized levels on the true
problem. Policies:

- ``published``: the precomputed decisions, matched by the client's own rule
  (:mod:`qres_client.index`: exact, then the runtime greedy on the observed state
  when the bundle has fallback.json, or closest cover and fallback, per ``unmatched``);
- ``fcfs`` (no policy): admit everything; under overload, first come first served, the
  arrival order fixed by sha256 of the workload id;
- ``tiers`` (static criticality): admit everything; under overload, by the workloads'
  ``tier`` column (0 first), ties by id: a priority load shedder reacting to capacity;
- ``greedy``: the greedy solver run live on the observed state (same delay as published);
- ``oracle``: the optimum (greedy + CP-SAT portfolio) of the true state, with no delay.

The oracle is the limit among decisions that honour the minimum shares: a policy can only
exceed it by starving some workload below its minimum, which is counted as a violation.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from policies.graph import close_down_set, hard_dependents, root_down_set
from policies.model.states import DEGRADED, DOWN, UP
from policies.scenarios.scenario_set import Scenario, scenario_key
from policies.shedding.policy import SHEDDING, GreedySheddingSolver, build_shedding_problems
from policies.shedding.problem import SheddingProblem, shedding_objective

__all__ = [
    "Incident",
    "View",
    "find_incidents",
    "realize_levels",
    "StateCatalog",
    "OraclePolicy",
    "PublishedPolicy",
    "GreedyPolicy",
    "PriorityPolicy",
    "fcfs_policy",
    "tiers_policy",
    "replay_window_values",
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
    L = problem.levels
    k = np.where(problem.runnable, np.clip(np.asarray(intended, dtype=np.int64), 0, L), 0)
    step = problem.demand / L
    if float(k @ step) <= problem.capacity + problem.tolerance:
        return k
    out, room = np.zeros_like(k), problem.capacity + problem.tolerance / 2
    for w in priority:
        if k[w] == 0:
            continue
        take = int(k[w]) if step[w] <= 0 else min(int(k[w]), max(int(math.floor(room / step[w] + 1e-9)), 0))
        out[w] = take
        room -= take * step[w]
    return out


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


class OraclePolicy:
    """Hindsight: the portfolio optimum of the true state, no delay."""

    name, delayed = "oracle", False

    def __init__(self, *, seed: int = 0, time_limit_s: float = 2.0) -> None:
        self.seed, self.time_limit_s = seed, time_limit_s

    def intend(self, view: View) -> tuple[np.ndarray, np.ndarray]:
        res = SHEDDING.solve(
            view.problem, seed=self.seed, time_limit_s=self.time_limit_s, solvers=("greedy", "cpsat"), top_k=1
        )
        return np.asarray(res.best.solution, dtype=np.int64), view.problem.order


class GreedyPolicy:
    """The greedy solver, live on the observed state."""

    name, delayed = "greedy", True

    def intend(self, view: View) -> tuple[np.ndarray, np.ndarray]:
        res = GreedySheddingSolver().solve(view.problem, seed=0, time_limit_s=1.0)
        return np.asarray(res.solution, dtype=np.int64), view.problem.order


class PublishedPolicy:
    """The precomputed decisions, looked up as the runtime client does (``index.decide``)."""

    name, delayed = "published", True

    def __init__(self, index, unmatched: str = "greedy") -> None:
        self.index, self.unmatched = index, unmatched
        self.matched: dict[str, str] = {}  # observed key -> scenario that answered

    def intend(self, view: View) -> tuple[np.ndarray, np.ndarray]:
        p = view.problem
        decision = self.index.decide(view.down, view.degraded - view.down, self.unmatched)
        self.matched[view.key] = decision.scenario
        pos = {w: i for i, w in enumerate(p.workload_ids)}
        k = np.zeros(len(pos), dtype=np.int64)
        ranked = []
        for a in decision.actions:
            if a.workload_id in pos:
                k[pos[a.workload_id]] = int(round(a.admit * p.levels))
                ranked.append(pos[a.workload_id])
        rest = [w for w in p.order.tolist() if w not in set(ranked)]
        return k, np.asarray(ranked + rest, dtype=np.int64)


class PriorityPolicy:
    """Admit everything; under overload serve in a fixed order (the runtime reacts to capacity at once)."""

    delayed = False

    def __init__(self, name: str, key: Callable[[str, int], tuple]) -> None:
        self.name, self._key = name, key

    def intend(self, view: View) -> tuple[np.ndarray, np.ndarray]:
        p = view.problem
        order = sorted(range(len(p.workload_ids)), key=lambda w: self._key(p.workload_ids[w], w))
        return np.full(len(p.workload_ids), p.levels, dtype=np.int64), np.asarray(order, dtype=np.int64)


def fcfs_policy() -> PriorityPolicy:
    """No policy: first come, first served, arrivals ordered by sha256 of the workload id."""
    return PriorityPolicy("fcfs", lambda wid, _: (hashlib.sha256(wid.encode()).hexdigest(), wid))


def tiers_policy(workloads: pa.Table) -> PriorityPolicy:
    """Static criticality tiers: the workloads' ``tier`` column, 0 served first, ties by id."""
    tier = dict(zip(workloads.column("workload_id").to_pylist(), workloads.column("tier").to_pylist()))
    return PriorityPolicy("tiers", lambda wid, _: (int(tier.get(wid, 99)), wid))


def replay_window_values(
    policy, truth: Sequence[View], observed: Sequence[View], cache: dict | None = None
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Per window: realized value per hour, realized levels and intended levels of ``policy``."""
    cache = {} if cache is None else cache
    values, realized, intended = [], [], []
    for t, o in zip(truth, observed, strict=True):
        seen = o if policy.delayed else t
        if ("intend", seen.key) not in cache:
            cache[("intend", seen.key)] = policy.intend(seen)
        k_int, prio = cache[("intend", seen.key)]
        if ("real", seen.key, t.key) not in cache:
            k = realize_levels(t.problem, k_int, prio)
            cache[("real", seen.key, t.key)] = (k, shedding_objective(t.problem, k))
        k, v = cache[("real", seen.key, t.key)]
        values.append(v)
        realized.append(k)
        intended.append(k_int)
    return np.asarray(values, dtype=np.float64), realized, intended
