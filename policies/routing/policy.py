"""Traffic routing under failure: per scenario, weights across each service's region endpoints.

The family's front door (model and solvers: :mod:`policies.routing.problem`).

Endpoints are derived from the telemetry (:func:`routing_documents`): a service that is not a
region or SaaS has one endpoint per region it runs in: only its home region when it
hard-depends on a region (pinned), every region otherwise (active-active). An endpoint is down
in a scenario when its service or its region is effectively down; a degraded region halves
(``degraded_capacity_share``) its capacity and multiplies its latency by
``degraded_latency_factor``. Capacity share: the service's ``capacity`` split over regions in
proportion to the regions' capacity, divided by the demand of the service's workloads, capped
at 1. Latency samples: ``num_samples`` draws (seeded per service and endpoint state, so a service
a scenario leaves as in ``normal`` has normal's samples) from the service's observed
``latency_ms`` in health checks that were not down, plus ``remote_penalty_ms`` outside its home
region; each draw fails with the service's observed share of down checks and then counts as
``timeout_ms``. Export: Envoy ``load_balancing_weight`` (integers >= 1 summing to about 100;
an endpoint at weight 0 is marked unhealthy instead) and Istio ``localityLbSetting.distribute``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from policies.routing.export import (
    envoy_weights,
    istio_distribute,
    routing_decisions_table,
    routing_policy_document,
)
from policies.routing.problem import (
    ROUTING_SOLVERS,
    is_feasible_routing,
    routing_objective,
    routing_problem_from_dict,
)
from policies.scenarios.scenario_set import NORMAL_KEY, Scenario
from policies.solve.family import Family
from policies.solve.portfolio import derive_seed

__all__ = [
    "latency_pool",
    "routing_documents",
    "ROUTING",
    "envoy_weights",
    "istio_distribute",
    "routing_decisions_table",
    "routing_policy_document",
]


def latency_pool(health_checks: pa.Table) -> dict[str, tuple[np.ndarray, float]]:
    """Per service: sorted latencies of checks that were not down, and the share of down checks.

    Chunk by chunk (a day file each), so the working arrays follow one file, not the history;
    each service's pieces are joined and sorted at the end (the same sorted array as one pass).
    """
    hc = health_checks.select(["service_id", "status", "latency_ms"])
    pos: dict[str, int] = {}  # service -> index, in order of first appearance
    pieces: list[list[np.ndarray]] = []
    counts, downs = np.zeros(0, np.int64), np.zeros(0, np.int64)
    for batch in hc.to_batches():
        codes = pc.dictionary_encode(batch.column(0))
        remap = np.array([pos.setdefault(s, len(pos)) for s in codes.dictionary.to_pylist()], np.int64)
        n = len(pos)
        pieces += [[] for _ in range(n - len(pieces))]
        counts, downs = np.pad(counts, (0, n - counts.size)), np.pad(downs, (0, n - downs.size))
        if not batch.num_rows:
            continue
        idx = remap[codes.indices.to_numpy()]
        down = pc.equal(batch.column(1), "down").to_numpy(zero_copy_only=False)
        lat = pc.fill_null(batch.column(2).cast(pa.float64()), np.nan).to_numpy(zero_copy_only=False)
        counts += np.bincount(idx, minlength=n)
        downs += np.bincount(idx[down], minlength=n)
        # Group the kept latencies by service (a stable sort of small integer codes is a radix
        # sort in numpy); one numpy call per service and chunk, since this runs beside the fit.
        keep = ~down & np.isfinite(lat)
        kept_idx = idx[keep].astype(np.int16 if n < 2**15 else np.int64)
        grouped = lat[keep][np.argsort(kept_idx, kind="stable")]
        bounds = np.concatenate([[0], np.cumsum(np.bincount(kept_idx, minlength=n))])
        for i in np.flatnonzero(bounds[1:] > bounds[:-1]):
            pieces[i].append(grouped[bounds[i] : bounds[i + 1]])
    out = {}
    for sid, i in pos.items():
        group = np.concatenate(pieces[i]) if pieces[i] else np.zeros(0, np.float64)
        group.sort()
        out[sid] = (group, float(downs[i] / counts[i]))
    return out


def routing_documents(
    services: pa.Table,
    dependencies: pa.Table,
    workloads: pa.Table,
    health_checks: pa.Table | None,
    scenarios: Sequence[Scenario],
    *,
    seed: int,
    num_samples: int = 64,
    sla_ms: float = 250.0,
    alpha: float = 0.95,
    beta: float = 1.0,
    timeout_ms: float = 2000.0,
    remote_penalty_ms: float = 30.0,
    degraded_capacity_share: float = 0.5,
    degraded_latency_factor: float = 2.0,
    unserved_penalty_ms: float = 10_000.0,
    pool: dict[str, tuple[np.ndarray, float]] | None = None,
    restrict: bool = False,
) -> list[dict]:
    """One JSON problem per scenario (the form of ``data/examples/routing.json``), in scenario order.

    ``pool`` is :func:`latency_pool` of ``health_checks`` when already computed (the flow
    computes it while the failure model is fitted); then ``health_checks`` is not read.
    ``restrict``: every scenario but ``normal`` names only the services it touches (an endpoint
    down or degraded); its ``services`` may then be empty (:mod:`policies.routing.restrict`).
    """
    rows = services.to_pylist()
    kind = {r["service_id"]: r["kind"] for r in rows}
    regions = {r["service_id"]: float(r["capacity"]) for r in rows if r["kind"] == "region"}
    total = sum(regions.values()) or 1.0
    pinned = {}
    for s, d, hard in zip(*(dependencies.column(c).to_pylist() for c in ("service_id", "depends_on", "hard"))):
        if hard and kind.get(d) == "region":
            pinned[s] = d
    demand: dict[str, float] = {}
    for s, d in zip(workloads.column("service_id").to_pylist(), workloads.column("demand").to_pylist()):
        demand[s] = demand.get(s, 0.0) + float(d)
    pool = latency_pool(health_checks) if pool is None else pool
    plan = []
    for r in sorted(rows, key=lambda r: r["service_id"]):
        sid = r["service_id"]
        if r["kind"] in ("region", "saas") or sid not in pool or not len(pool[sid][0]):
            continue
        home = pinned.get(sid) or r["region"]
        where = [pinned[sid]] if sid in pinned else sorted(regions)
        plan.append((sid, home, where, float(r["capacity"])))
    docs = []
    for s in scenarios:
        down, degraded = set(s.effective_down) | set(s.down), set(s.degraded)
        services_doc = []
        for sid, home, where, cap in plan:
            state = tuple((reg, sid not in down and reg not in down, reg in degraded) for reg in where)
            if restrict and s.key != NORMAL_KEY and all(up and not deg for _, up, deg in state):
                continue  # untouched: its block is normal's, and so is its answer (policies.routing.restrict)
            lat, p_fail = pool[sid]
            # Drawn per service and endpoint state, not per scenario: a service whose endpoints are
            # as in normal gets normal's samples, so its LP block (and optimum) is normal's.
            rng = np.random.default_rng(derive_seed(seed, "routing", sid, *(f"{r}:{u:d}{g:d}" for r, u, g in state)))
            eps = []
            for reg, up, is_degraded in state:
                share = cap * (regions[reg] / total if sid not in pinned else 1.0)
                if is_degraded:
                    share *= degraded_capacity_share
                draw = lat[rng.integers(0, len(lat), num_samples)] + (0.0 if reg == home else remote_penalty_ms)
                if is_degraded:
                    draw = draw * degraded_latency_factor
                draw = np.where(rng.random(num_samples) < p_fail, timeout_ms, draw)
                eps.append(
                    {
                        "endpoint_id": f"{sid}@{reg}",
                        "locality": reg,
                        "capacity_share": round(min(1.0, share / demand[sid]) if demand.get(sid) else 1.0, 6)
                        if up
                        else 0.0,
                        "latency_ms": np.round(draw, 3).tolist(),
                    }
                )
            services_doc.append({"service_id": sid, "home": home, "endpoints": eps})
        docs.append(
            {
                "key": s.key,
                "sla_ms": sla_ms,
                "alpha": alpha,
                "beta": beta,
                "unserved_penalty_ms": unserved_penalty_ms,
                "services": services_doc,
            }
        )
    return docs


ROUTING = Family(
    name="routing",
    from_dict=routing_problem_from_dict,
    solvers=ROUTING_SOLVERS,
    objective=routing_objective,
    is_feasible=is_feasible_routing,
    sense="min",
    default_solvers=("greedy", "lp"),
    variables=lambda p: p.endpoint_ids,
)
