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

from policies.routing.problem import (
    ROUTING_SOLVERS,
    RoutingProblem,
    is_feasible_routing,
    routing_objective,
    routing_problem_from_dict,
)
from policies.scenarios.scenario_set import NORMAL_KEY, Scenario
from policies.solve.family import Family
from policies.solve.portfolio import PortfolioResult, derive_seed
from qres_client.schema import DECISIONS_ROUTING

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


def envoy_weights(shares: Sequence[float], total: int = 100) -> list[int]:
    """Integer weights proportional to ``shares`` (largest remainder); >= 1 where the share is > 0."""
    s = np.clip(np.asarray(shares, dtype=np.float64), 0.0, None)
    s = np.where(s < 1e-9, 0.0, s)
    if s.sum() <= 0:
        return [0] * len(s)
    raw = s / s.sum() * total
    w = np.floor(raw).astype(np.int64)
    for i in np.lexsort((np.arange(len(s)), -(raw - w)))[: max(total - int(w.sum()), 0)]:
        w[i] += 1
    return np.where(s > 0, np.maximum(w, 1), 0).tolist()


def istio_distribute(problem: RoutingProblem, x, homes: dict[str, str]) -> list[dict]:
    """``localityLbSetting.distribute`` entries per service: from its home region, percentages summing to 100."""
    out = []
    for j, sid in enumerate(problem.service_ids):
        e = np.flatnonzero(problem.service == j)
        w = envoy_weights(np.asarray(x)[e], 100)
        if sum(w) == 0:
            continue
        out.append(
            {
                "service": sid,
                "from": f"{homes.get(sid, '*')}/*",
                "to": {f"{problem.locality[i]}/*": int(v) for i, v in zip(e, w) if v > 0},
            }
        )
    return out


def _actions(p: RoutingProblem, x) -> list[dict]:
    x = np.asarray(x)
    acts = []
    for j in range(len(p.service_ids)):
        e = np.flatnonzero(p.service == j)
        for i, w in zip(e, envoy_weights(x[e])):
            acts.append(
                {
                    "endpoint_id": p.endpoint_ids[i],
                    "service_id": p.service_ids[j],
                    "locality": p.locality[i],
                    "admit": round(float(x[i]), 6) + 0.0,
                    "envoy_weight": int(w),
                    "healthy": w > 0,
                }
            )
    acts.sort(key=lambda a: (-a["admit"], a["endpoint_id"]))
    return [{**a, "rank": r} for r, a in enumerate(acts, start=1)]


def routing_decisions_table(
    scenarios: Sequence[Scenario], problems: Sequence[RoutingProblem], results: Sequence[PortfolioResult]
) -> pa.Table:
    # Converted to Arrow every ~256k rows (then joined into one chunk: the same table): a row per
    # endpoint and scenario is 4M rows at 1,000 services, several GB as Python lists at once.
    parts: list[pa.Table] = []
    cols: dict[str, list] = {f.name: [] for f in DECISIONS_ROUTING}
    for s, p, r in zip(scenarios, problems, results, strict=True):
        if len(cols["scenario_key"]) >= 1 << 18:
            parts.append(pa.Table.from_pydict(cols, schema=DECISIONS_ROUTING))
            cols = {f.name: [] for f in DECISIONS_ROUTING}
        for a in _actions(p, r.best.solution):
            for name, val in (
                ("scenario_key", s.key),
                ("down", list(s.down)),
                ("degraded", list(s.degraded)),
                ("effective_down", list(s.effective_down)),
                ("probability", float(s.probability)),
                ("workload_id", a["endpoint_id"]),
                ("admit", a["admit"]),
                ("rank", a["rank"]),
                ("service_id", a["service_id"]),
                ("locality", a["locality"]),
                ("envoy_weight", a["envoy_weight"]),
                ("healthy", a["healthy"]),
            ):
                cols[name].append(val)
    parts.append(pa.Table.from_pydict(cols, schema=DECISIONS_ROUTING))
    return pa.concat_tables(parts).combine_chunks() if len(parts) > 1 else parts[0]


def routing_policy_document(
    scenarios: Sequence[Scenario],
    problems: Sequence[RoutingProblem],
    results: Sequence[PortfolioResult],
    docs: Sequence[dict],
) -> dict:
    out = []
    # A service's home does not depend on the scenario; a restricted document names only some services.
    homes = {sv["service_id"]: sv.get("home", "*") for d in docs for sv in d["services"]}
    for s, p, r in zip(scenarios, problems, results, strict=True):
        out.append(
            {
                "key": s.key,
                "probability": float(f"{s.probability:.12g}"),
                "solver": r.chosen,
                "objective": round(r.best.objective, 6),
                "bound": None if r.bound is None else round(r.bound, 6),
                "gap": None if r.gap is None else float(f"{r.gap:.12g}"),
                "actions": _actions(p, r.best.solution),
                "istio_distribute": istio_distribute(p, r.best.solution, homes),
            }
        )
    return {"schema_version": 1, "policy": "routing", "scenarios": out}
