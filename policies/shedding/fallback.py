"""fallback.json: what a runtime greedy needs to plan ANY observed outage, not only the scenarios.

Held-out incidents bring down-sets the scenario set never saw; the client used to answer
them with the closest covering scenario or the all-down fallback (admit nothing), which
kept 58% of the oracle's value on real incidents. With this file in the shedding bundle
the client (:mod:`qres_client.greedy`) runs the greedy solver's rule on the observed
state itself, under the same model :func:`policies.shedding.policy.build_shedding_problems` uses:

- per workload (sorted by id): value, demand, min share, its ``needs`` (its own service
  and its ``requires``, closed upwards over the hard dependency edges: every service
  whose outage makes it unrunnable) and its ``risks`` (depends_on, cost_per_hour);
- the capacity model: each region service's capacity, the hard dependency edges (to close
  the observed down set, as the builder closes each scenario's) and the two degraded
  shares; plus ``levels``.

Floats are stored unrounded (JSON floats round-trip exactly) so the runtime plan equals
the greedy solver's on the same state; the same tables give the same bytes.
"""

from __future__ import annotations

from collections import defaultdict

import pyarrow as pa

from policies.graph import close_down_set, hard_dependents

__all__ = ["FALLBACK_FILE", "FALLBACK_SCHEMA_VERSION", "fallback_document"]

FALLBACK_FILE = "fallback.json"
FALLBACK_SCHEMA_VERSION = 1


def _hard_dependencies(dependents: dict[str, frozenset[str]]) -> dict[str, set[str]]:
    """Reverse of ``hard_dependents``: service -> what it hard-depends on directly."""
    out: dict[str, set[str]] = defaultdict(set)
    for dep, users in dependents.items():
        for u in users:
            out[u].add(dep)
    return out


def fallback_document(
    services: pa.Table,
    dependencies: pa.Table,
    workloads: pa.Table,
    *,
    levels: int = 4,
    degraded_capacity_share: float = 0.5,
    degraded_risk_share: float = 0.5,
) -> dict:
    """fallback.json content for these telemetry tables (the same arguments as the problem builder)."""
    for name, share in (
        ("degraded_capacity_share", degraded_capacity_share),
        ("degraded_risk_share", degraded_risk_share),
    ):
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{name} must be within 0..1, got {share!r}")
    edges = list(zip(*(dependencies.column(c).to_pylist() for c in ("service_id", "depends_on", "hard"))))
    dependents = hard_dependents(edges)
    # Everything a service needs, transitively: the services whose outage takes it down.
    upstream = _hard_dependencies(dependents)
    wl = workloads.sort_by("workload_id")
    rows = zip(
        *(
            wl.column(c).to_pylist()
            for c in ("workload_id", "service_id", "requires", "risks", "value_per_hour", "demand", "min_share")
        )
    )
    out = []
    for wid, own, requires, risks, value, demand, min_share in rows:
        needs = close_down_set({own, *(requires or ())}, upstream)
        out.append(
            {
                "workload_id": wid,
                "service_id": own,
                "value_per_hour": float(value),
                "demand": float(demand),
                "min_share": float(min_share or 0.0),
                "needs": sorted(needs),
                "risks": [[r["depends_on"], float(r["cost_per_hour"])] for r in (risks or ())],
            }
        )
    kinds = zip(*(services.column(c).to_pylist() for c in ("service_id", "kind", "capacity")))
    regions = {sid: float(cap or 0.0) for sid, kind, cap in sorted(kinds) if kind == "region"}
    return {
        "schema_version": FALLBACK_SCHEMA_VERSION,
        "policy": "shedding",
        "rule": "greedy",
        "levels": int(levels),
        "degraded_capacity_share": float(degraded_capacity_share),
        "degraded_risk_share": float(degraded_risk_share),
        "hard_dependents": {k: sorted(v) for k, v in sorted(dependents.items())},
        "regions": regions,
        "workloads": out,
    }
