"""The runtime greedy: plan an observed outage that no scenario names, from fallback.json.

Stdlib only (the client's dependency budget). It repeats, in plain Python, what the
pipeline does for a scenario: :func:`policies.shedding.policy.build_shedding_problems` (close the
down set over hard dependencies, capacity of the regions left, runnable workloads, risk
of soft dependencies) and then :class:`policies.shedding.solvers.GreedySheddingSolver`
(minimum shares first, rounded up to a level and scaled down together when they do not
fit; then levels by (value - risk) / demand descending while capacity lasts), and ranks
the result like :func:`policies.shedding.export.shedding_actions`. So its plan is
feasible under the same model as the published ones, and equals the greedy solver's
answer when the observed state is a scenario (tests check both).

A plan costs O(workloads + risk entries + regions) Python operations: ~70 µs for 60
workloads; the client caches it per observed state.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from types import MappingProxyType

from qres_client.bundle import FALLBACK_FILE
from qres_client.errors import BundleVerificationError

__all__ = ["RuntimeGreedy", "GREEDY_KEY", "FALLBACK_FILE", "UNMATCHED_RULES", "DEFAULT_UNMATCHED", "parse_fallback"]

GREEDY_KEY = "greedy:observed"
# How decide() answers an observation no scenario names exactly (see qres_client.client):
#   "greedy":             runtime greedy on the observed state (cover only without fallback.json)
#   "cover-then-greedy":  closest cover first; runtime greedy instead of the all-down fallback
#   "cover":              the old rule: closest cover, else all-down fallback
UNMATCHED_RULES = ("greedy", "cover-then-greedy", "cover")
DEFAULT_UNMATCHED = "greedy"
_MIN_EPS = 1e-9  # as in policies.shedding.problem: min-share levels are rounded up with this slack
_FEAS_REL_TOL = 1e-9


def _bad(where: str, what: str) -> BundleVerificationError:
    return BundleVerificationError(f"{where}: {what}; republish the bundle")


def _number(value: object, where: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _bad(where, f"{what} must be a finite number, got {value!r}")
    return float(value)


def _names(value: object, where: str, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise _bad(where, f"{what} must be a list of service ids, got {value!r}")
    return tuple(value)


class RuntimeGreedy:
    """The greedy plan of any observed state under the bundle's shedding model."""

    def __init__(self, doc: Mapping, where: str) -> None:
        if not isinstance(doc, Mapping) or doc.get("schema_version") != 1:
            got = doc.get("schema_version") if isinstance(doc, Mapping) else type(doc).__name__
            raise _bad(where, f"schema_version must be 1, got {got!r}")
        levels = doc.get("levels")
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
            raise _bad(where, f"levels must be an int >= 1, got {levels!r}")
        self.levels = levels
        self.capacity_share = _number(doc.get("degraded_capacity_share"), where, "degraded_capacity_share")
        self.risk_share = _number(doc.get("degraded_risk_share"), where, "degraded_risk_share")
        deps = doc.get("hard_dependents")
        regions = doc.get("regions")
        rows = doc.get("workloads")
        if not isinstance(deps, Mapping) or not isinstance(regions, Mapping) or not isinstance(rows, list):
            raise _bad(where, "hard_dependents and regions must be objects and workloads a list")
        self.dependents = {k: frozenset(_names(v, where, f"hard_dependents[{k!r}]")) for k, v in deps.items()}
        self.regions = tuple(sorted((k, _number(v, where, f"regions[{k!r}]")) for k, v in regions.items()))
        ids, value, demand, min_share, needs, risks = [], [], [], [], [], []
        for i, w in enumerate(rows):
            if not isinstance(w, Mapping) or not isinstance(w.get("workload_id"), str):
                raise _bad(where, f"workloads[{i}] has no workload_id")
            wid = w["workload_id"]
            ids.append(wid)
            value.append(_number(w.get("value_per_hour"), where, f"{wid}: value_per_hour"))
            demand.append(_number(w.get("demand"), where, f"{wid}: demand"))
            min_share.append(_number(w.get("min_share"), where, f"{wid}: min_share"))
            needs.append(frozenset(_names(w.get("needs"), where, f"{wid}: needs")))
            r = w.get("risks")
            if not isinstance(r, list) or not all(
                isinstance(x, list) and len(x) == 2 and isinstance(x[0], str) for x in r
            ):
                raise _bad(where, f"{wid}: risks must be a list of [service_id, cost_per_hour], got {r!r}")
            risks.append(tuple((s, _number(c, where, f"{wid}: risk cost")) for s, c in r))
        if ids != sorted(set(ids)):
            raise _bad(where, "workload ids must be unique and sorted")
        if any(d < 0 for d in demand) or any(not 0.0 <= m <= 1.0 for m in min_share):
            raise _bad(where, "demand must be >= 0 and min_share within 0..1")
        self.workload_ids, self.value, self.demand, self.min_share = tuple(ids), value, demand, min_share
        self.needs, self.risks = needs, risks
        self._demand_total = sum(demand)

    def close(self, down: frozenset[str]) -> frozenset[str]:
        """Everything down when ``down`` is (the closure over hard dependency edges)."""
        seen, stack = set(down), list(down)
        while stack:
            for nxt in self.dependents.get(stack.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return frozenset(seen)

    def capacity(self, closed: frozenset[str], degraded: frozenset[str]) -> float:
        """C(s): regions not down, a degraded one counting ``degraded_capacity_share`` of it."""
        keep = 1.0 - (1.0 - self.capacity_share)  # the builder's 1 - down - (1 - share) * degraded
        return sum(0.0 if r in closed else cap * keep if r in degraded else cap for r, cap in self.regions)

    def levels_for(self, down: frozenset[str], degraded: frozenset[str]) -> tuple[list[int], list[bool], list[int]]:
        """(levels per workload, runnable per workload, density order) for an observed state."""
        return self._solve(down, degraded)[:3]

    def _solve(self, down: frozenset[str], degraded: frozenset[str]) -> tuple:
        """levels_for's answer, then net value, level size and capacity limit per workload (for the caps)."""
        closed = self.close(down)
        deg = degraded - closed
        L, n = self.levels, len(self.workload_ids)
        cap = self.capacity(closed, deg)
        run = [not (nd & closed) for nd in self.needs]
        net = []
        for v, rs in zip(self.value, self.risks):
            r = 0.0
            for s, c in rs:
                if s in closed:
                    r += c
                elif s in deg:
                    r += c * self.risk_share
            net.append(v - r)
        step = [d / L for d in self.demand]
        tol = _FEAS_REL_TOL * max(cap, self._demand_total)
        limit = cap + tol / 2
        lo = [min(max(math.ceil(m * L - _MIN_EPS), 0), L) if ok else 0 for m, ok in zip(self.min_share, run)]
        if _dot(lo, step) > limit:  # minimums do not fit: scale them down together (see shedding_problem)
            mass = sum(m * d for m, d, ok in zip(self.min_share, self.demand, run) if ok)
            factor = cap / mass
            scaled = [min(a, math.floor(factor * m * L + _MIN_EPS)) for a, m in zip(lo, self.min_share)]
            if _dot(scaled, step) > limit:
                scaled = [min(a, math.floor(factor * m * L)) for a, m in zip(lo, self.min_share)]
            lo = [a if ok else 0 for a, ok in zip(scaled, run)]
        hi = [(a if x <= 0 else L) if ok else 0 for a, x, ok in zip(lo, net, run)]
        order = sorted(range(n), key=lambda w: _density_key(net[w], self.demand[w], w))
        k = list(lo)
        room = limit - _dot(k, step)
        for w in order:  # fill_levels
            add = hi[w] - k[w]
            if add <= 0:
                continue
            if step[w] > 0:
                add = _count(room, step[w], add)
            if add > 0:
                k[w] += add
                room -= add * step[w]
        return k, run, order, net, step, limit

    def plan(self, down: frozenset[str], degraded: frozenset[str]) -> list[tuple[str, float, int]]:
        """Ranked (workload_id, admit, rank): admitted by density, then runnable-but-shed, then not runnable."""
        k, run, order = self.levels_for(down, degraded)
        pos = {w: i for i, w in enumerate(order)}
        ranked = sorted(range(len(k)), key=lambda w: (0 if k[w] > 0 else 1 if run[w] else 2, pos[w]))
        L = self.levels
        return [(self.workload_ids[w], k[w] / L, r) for r, w in enumerate(ranked, start=1)]

    def capped_plan(self, down: frozenset[str], degraded: frozenset[str]) -> list[tuple[str, float, int, Mapping]]:
        """:meth:`plan` with each action's extras ``{"admit_max": cap}``, by the rule of ``policies.shedding.admission``:
        a risk shed stays cut, a capacity shed is left to admission control, a partial share is lifted
        only when serving the lifted caps in rank order keeps as much value in the observed state."""
        k, run, order, net, step, limit = self._solve(down, degraded)
        pos = {w: i for i, w in enumerate(order)}
        ranked = sorted(range(len(k)), key=lambda w: (0 if k[w] > 0 else 1 if run[w] else 2, pos[w]))
        L = self.levels
        risk_cut = [ok and x <= 0 for ok, x in zip(run, net)]
        lifted = [a if cut else L for a, cut in zip(k, risk_cut)]
        capped = [a if cut or 0 < a < L else L for a, cut in zip(k, risk_cut)]

        def value(caps: list[int]) -> float:
            room, total = limit, 0.0
            for w in ranked:
                take = caps[w] if run[w] else 0
                if take and step[w] > 0:
                    take = min(take, max(int(math.floor(room / step[w] + 1e-9)), 0))
                room -= take * step[w]
                total += take * net[w]
            return total / L

        caps = lifted if value(lifted) >= value(capped) - 1e-9 else capped
        return [
            (self.workload_ids[w], k[w] / L, r, MappingProxyType({"admit_max": caps[w] / L}))
            for r, w in enumerate(ranked, start=1)
        ]


def _dot(levels: list[int], step: list[float]) -> float:
    return sum(a * s for a, s in zip(levels, step) if a)


def _density_key(net: float, demand: float, index: int) -> tuple:
    """(v - r) / d descending, ties by id; as numpy's lexsort on -density (NaN, i.e. 0 / 0, last)."""
    if demand > 0:
        dens = net / demand
    elif net == 0:
        return (1, 0.0, index)
    else:
        dens = math.inf if net > 0 else -math.inf
    return (0, -dens, index)


def _count(amount: float, step: float, cap: int) -> int:
    """Levels of size ``step`` that fit in ``amount``, within 0..cap (shedding_problem._count, floor)."""
    n = amount / step
    return 0 if n <= 0 else cap if n >= cap else min(int(math.floor(n)), cap)


def parse_fallback(data: bytes, where: str) -> RuntimeGreedy:
    """fallback.json bytes (already verified against the manifest) -> a :class:`RuntimeGreedy`."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise _bad(where, f"not readable as JSON ({exc})") from exc
    return RuntimeGreedy(doc, where)
