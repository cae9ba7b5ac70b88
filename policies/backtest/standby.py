r"""Standby copies in the replay: who a warm copy serves when the primary cannot run, and what keeping it costs.

A placement is a set of standby candidates (``standby_candidates``: a copy of ``service_id`` at
``site_id``) kept warm for the whole incident. The rules, the same for every policy that has one:

- **Who is served.** In a window whose *true* state makes a workload unrunnable (its service or a
  service it requires is down), the workload runs on standby when every such down service has a
  placed copy at a site that is up in the true state (neither the site nor its region down). A
  warm copy takes over at once: there is nothing to detect that the primary's own health checks
  would not show, and a warm copy needs no warm-up (its level does not change, so no switching cost).
- **How much.** A copy serves at most ``coverage`` x the normal demand of the workloads that need
  its service (coverage is the standby family's "share of the service it keeps"; the site's
  capacity is what its copies cover). Of a service with several usable copies, the one with the
  highest coverage is activated (ties: candidate id), as the standby bundle's ``admit`` says.
  Workloads are served in the policy's priority order, in whole levels, until the copy is full;
  only workloads with positive net value (value minus risk) are moved.
- **What it costs.** ``cost`` of every placed candidate, read as value per hour (the overlays'
  README states the assumption), charged for every window the placement is held, whatever fails.

The standby family (:mod:`policies.standby.problem`) counts a copy's value as ``coverage`` x the
value of the service's workloads; the replay counts what the copy actually runs, so demand and the
policy's order matter here and not there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    from policies.backtest.replay import View

__all__ = ["StandbyWorld", "has_standby_tables", "standby_summary", "train_placement"]

# The nightly's standby portfolio less annealing: with greedy's complete hint CP-SAT ends at or above
# the annealer (the standby benchmark in benchmarks/solvers.py, issue 14) and proves the overlays' small problems optimal.
PLACEMENT_SOLVERS = ("greedy", "cpsat")


def has_standby_tables(tables: Mapping[str, pa.Table]) -> bool:
    """Whether the telemetry carries sites and at least one standby candidate."""
    return "sites" in tables and "standby_candidates" in tables and tables["standby_candidates"].num_rows > 0


def train_placement(tables: Mapping[str, pa.Table], scenarios, *, seed: int, time_limit_s: float) -> tuple[str, ...]:
    """The placement the nightly would publish for ``scenarios`` (the standby family's best solve)."""
    from policies.standby.policy import STANDBY, build_standby_problem

    problem, _ = build_standby_problem(
        tables["services"], tables["workloads"], tables["sites"], tables["standby_candidates"], scenarios
    )
    res = STANDBY.solve(problem, seed=seed, time_limit_s=time_limit_s, solvers=PLACEMENT_SOLVERS, top_k=1)
    return tuple(problem.candidate_ids[c] for c in np.flatnonzero(np.asarray(res.best.solution) > 0))


class StandbyWorld:
    """Sites, candidates and each workload's needs, to serve unrunnable workloads from a placement."""

    def __init__(self, tables: Mapping[str, pa.Table]) -> None:
        sites = tables["sites"]
        self.region = dict(zip(sites.column("site_id").to_pylist(), sites.column("region").to_pylist()))
        c = tables["standby_candidates"]
        cols = ("candidate_id", "service_id", "site_id", "cost", "coverage")
        self.candidates = {r[0]: r[1:] for r in zip(*(c.column(n).to_pylist() for n in cols))}
        wl = tables["workloads"].sort_by("workload_id")
        rows = zip(*(wl.column(n).to_pylist() for n in ("service_id", "requires", "demand")))
        self.needs: list[frozenset[str]] = []
        self.service_demand: dict[str, float] = {}
        for svc, req, demand in rows:
            need = frozenset({svc, *(req or ())})
            self.needs.append(need)
            for j in need:
                self.service_demand[j] = self.service_demand.get(j, 0.0) + float(demand)

    def cost_per_h(self, placement: Sequence[str]) -> float:
        """What keeping ``placement`` warm costs per hour (the candidates' ``cost``)."""
        return float(sum(float(self.candidates[c][2]) for c in placement))

    def site_up(self, site: str, down: frozenset[str]) -> bool:
        region = self.region.get(site)
        return site not in down and (region is None or region not in down)

    def serve(
        self, truth: View, primary: np.ndarray, priority: np.ndarray, placement: Sequence[str]
    ) -> tuple[np.ndarray, float]:
        """Levels with the standby-served workloads added, and the value per hour standby serves."""
        p, down = truth.problem, truth.down
        left: dict[str, float] = {}  # down service -> what its active copy can still serve
        for cid in sorted(placement, key=lambda c: (-float(self.candidates[c][3]), c)):
            svc, site, _, cov = self.candidates[cid]
            if svc in down and svc not in left and self.site_up(site, down):
                left[svc] = float(cov) * self.service_demand.get(svc, 0.0)
        if not left:
            return primary, 0.0
        k, L = primary.copy(), p.levels
        step = p.demand / L
        for w in np.asarray(priority).tolist():
            need = self.needs[w] & down
            if p.runnable[w] or k[w] > 0 or p.net[w] <= 0 or not need or not need <= left.keys():
                continue
            take = L if step[w] <= 0 else min(L, *(int(math.floor(left[j] / step[w] + 1e-9)) for j in need))
            if take > 0:
                k[w] = take
                for j in need:
                    left[j] -= take * step[w]
        served = (k - primary).astype(np.float64)
        return k, float(served @ p.net) / L


def standby_summary(world: StandbyWorld | None, placement: Sequence[str], test_hours: float) -> dict | None:
    """The placement replayed and what it costs: per hour, and over the whole test period (None: none)."""
    if world is None or not placement:
        return None
    cost = world.cost_per_h(placement)
    return {"placed": list(placement), "cost_per_h": cost, "test_period_cost": cost * test_hours}
