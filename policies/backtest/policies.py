"""The one protocol every replayed policy follows, and the policies the backtest ships with.

A policy is a small, possibly stateful object. For each incident the replay calls
:meth:`ReplayPolicy.reset` once, then :meth:`ReplayPolicy.step` for the normal state (window
``-1``: the decision in force before the incident) and for every window of the incident, in
order. ``step`` gets the *observed* view (the health checks as the runtime sees them, delayed by
the hysteresis, ``degraded`` included) and returns a :class:`Decision`: intended levels and the
order in which the runtime serves them under overload. The world realizes that decision on the
true state (``replay.realize_levels``) and charges every change of a realized level
(``costs.SwitchCosts``). A policy never sees the true state, the incident's length or what
fails next: all of that is revealed window by window through ``step``.

Adaptive policies (``adaptive = True``: published, greedy, greedy with a dwell) act on the
observed view. Static ones (keep-all ``fcfs``, ``tiers``) ignore it: they admit everything and
rely on the runtime's admission control to serve in their fixed order when capacity is short.

A new policy (e.g. a time-aware published policy) is a class with ``name``, ``adaptive``,
``reset`` and ``step``; :func:`policies.backtest.run.replay_policies` lists the ones a backtest
runs. The hindsight oracle is not a policy: it is computed from every policy's decisions and the
true states afterwards (``policies.backtest.oracle``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa

from policies.shedding.admission import admission_caps, rank_order
from policies.shedding.policy import SHEDDING, GreedySheddingSolver

if TYPE_CHECKING:
    from policies.backtest.replay import View

__all__ = [
    "Decision",
    "ReplayPolicy",
    "PublishedPolicy",
    "GreedyPolicy",
    "AdmissionGreedyPolicy",
    "DwellPolicy",
    "StandbyPolicy",
    "PriorityPolicy",
    "fcfs_policy",
    "tiers_policy",
    "state_optimum",
]


@dataclass(frozen=True, eq=False)
class Decision:
    """Intended admitted levels (0..L per workload, sorted-id order), the serving order under overload,
    and the standby candidates kept warm (``policies.backtest.standby``; empty: none)."""

    levels: np.ndarray
    priority: np.ndarray
    standby: tuple[str, ...] = ()

    def same_levels(self, other: Decision | None) -> bool:
        return other is not None and np.array_equal(self.levels, other.levels)


@runtime_checkable
class ReplayPolicy(Protocol):
    """What the replay needs of a policy (see the module docstring for the call order)."""

    name: str
    adaptive: bool

    def reset(self) -> None:
        """Forget every state kept from an earlier incident."""

    def step(self, window: int, view: View) -> Decision:
        """The decision for ``window`` (``-1``: the normal state before the incident) given the observed ``view``."""


class _Memo:
    """A stateless policy: one answer per observed state, computed once and reused across incidents."""

    adaptive = True

    def __init__(self) -> None:
        self._memo: dict[str, Decision] = {}

    def reset(self) -> None:
        """Stateless: answers depend on the view only, so the memo survives incidents."""

    def step(self, window: int, view: View) -> Decision:
        if view.key not in self._memo:
            self._memo[view.key] = self._decide(view)
        return self._memo[view.key]

    def _decide(self, view: View) -> Decision:
        raise NotImplementedError


class GreedyPolicy(_Memo):
    """The greedy solver, live on the observed state."""

    name = "greedy"

    def _decide(self, view: View) -> Decision:
        res = GreedySheddingSolver().solve(view.problem, seed=0, time_limit_s=1.0)
        return Decision(np.asarray(res.solution, dtype=np.int64), view.problem.order)


class AdmissionGreedyPolicy(_Memo):
    """Live greedy that leaves capacity sheds to admission control, as a bundle's caps do.

    The same rule the bundle's ``admit_max`` follows (:mod:`policies.shedding.admission`), computed
    on the spot from the observed state: what a service with admission control gets without any
    precomputation, so that the published policy's merit is not the admission rule's.
    """

    name = "greedy_admission"

    def _decide(self, view: View) -> Decision:
        p = view.problem
        k = np.asarray(GreedySheddingSolver().solve(p, seed=0, time_limit_s=1.0).solution, dtype=np.int64)
        return Decision(admission_caps(p, k), rank_order(p, k))


class PublishedPolicy(_Memo):
    """The precomputed decisions, looked up as the runtime client does (``index.decide``)."""

    name = "published"

    def __init__(self, index, unmatched: str = "greedy") -> None:
        super().__init__()
        self.index, self.unmatched = index, unmatched
        self.matched: dict[str, str] = {}  # observed key -> scenario that answered

    def _decide(self, view: View) -> Decision:
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
        return Decision(k, np.asarray(ranked + rest, dtype=np.int64))


class DwellPolicy:
    """Another policy held for a minimum dwell: after a change, keep it ``dwell_windows`` windows.

    The live baseline for time-coupled policies: greedy with the same dwell that a precomputed
    policy uses, so that damping flaps is not counted as precomputation's merit.
    """

    adaptive = True

    def __init__(self, inner: ReplayPolicy, dwell_windows: int, name: str | None = None) -> None:
        if dwell_windows < 0:
            raise ValueError(f"dwell_windows must be >= 0, got {dwell_windows!r}")
        self.inner, self.dwell = inner, int(dwell_windows)
        self.name = name or f"{inner.name}_dwell"
        self.reset()

    def reset(self) -> None:
        self.inner.reset()
        self._held: Decision | None = None
        self._since = 0

    def step(self, window: int, view: View) -> Decision:
        want = self.inner.step(window, view)
        if self._held is None:  # the normal decision has been in force for ever
            self._held, self._since = want, self.dwell
            return want
        self._since += 1
        if not want.same_levels(self._held) and self._since >= self.dwell:
            self._held, self._since = want, 0
        return self._held


class StandbyPolicy:
    """Another policy with a standby placement made ahead of time, held through every incident.

    Baselines get none (a live rule cannot place a copy once the outage has started);
    ``greedy_standby`` is live greedy with the published placement, to tell the standby's
    share of a result from the shedding's.
    """

    def __init__(self, inner: ReplayPolicy, placement: tuple[str, ...], name: str | None = None) -> None:
        self.inner, self.placement = inner, tuple(sorted(placement))
        self.name = name or f"{inner.name}_standby"
        self.adaptive = inner.adaptive
        self.matched = getattr(inner, "matched", {})
        self._wrapped: dict[int, tuple[Decision, Decision]] = {}  # id of inner decision -> (it, with standby)

    def reset(self) -> None:
        self.inner.reset()

    def step(self, window: int, view: View) -> Decision:
        d = self.inner.step(window, view)
        hit = self._wrapped.get(id(d))
        if hit is None or hit[0] is not d:  # the same inner decision keeps one wrapper: the replay's fast path
            hit = self._wrapped[id(d)] = (d, Decision(d.levels, d.priority, self.placement))
        return hit[1]


class PriorityPolicy:
    """Static: admit everything; under overload the runtime serves in a fixed order at once."""

    adaptive = False

    def __init__(self, name: str, key: Callable[[str, int], tuple]) -> None:
        self.name, self._key = name, key
        self._order: dict[tuple[str, ...], Decision] = {}

    def reset(self) -> None:
        """Static: nothing to forget."""

    def step(self, window: int, view: View) -> Decision:
        p = view.problem
        if p.workload_ids not in self._order:
            order = sorted(range(len(p.workload_ids)), key=lambda w: self._key(p.workload_ids[w], w))
            self._order[p.workload_ids] = Decision(
                np.full(len(p.workload_ids), p.levels, dtype=np.int64), np.asarray(order, dtype=np.int64)
            )
        return self._order[p.workload_ids]


def fcfs_policy() -> PriorityPolicy:
    """Keep-all (no policy): first come, first served, arrivals ordered by sha256 of the workload id."""
    return PriorityPolicy("fcfs", lambda wid, _: (hashlib.sha256(wid.encode()).hexdigest(), wid))


def tiers_policy(workloads: pa.Table) -> PriorityPolicy:
    """Static criticality tiers: the workloads' ``tier`` column, 0 served first, ties by id."""
    tier = dict(zip(workloads.column("workload_id").to_pylist(), workloads.column("tier").to_pylist()))
    return PriorityPolicy("tiers", lambda wid, _: (int(tier.get(wid, 99)), wid))


def state_optimum(view: View, *, seed: int = 0, time_limit_s: float = 2.0) -> Decision:
    """The portfolio optimum (greedy + CP-SAT) of one state: the oracle's per-window candidate."""
    res = SHEDDING.solve(view.problem, seed=seed, time_limit_s=time_limit_s, solvers=("greedy", "cpsat"), top_k=1)
    return Decision(np.asarray(res.best.solution, dtype=np.int64), view.problem.order)
