"""The sample's tables, drawn from its topology and planted events.

Why: health checks are the bulk (86M rows for 1,000 services over 30 days), so they come in
blocks of whole days of at most ``BLOCK_ROWS`` rows, drawn one after another from one stream:
a writer holds one block at a time, and a span that fits in one block (the classic 30-day
sample) draws exactly what it always drew.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from policies.schema import STATUSES, TABLES
from policies.telemetry.sample.events import DEGRADED, DOWN, Event
from policies.telemetry.sample.fleet import CLASSIC_SERVICES, REGIONS, Topology

__all__ = ["BLOCK_ROWS", "MIN_MS", "health_blocks", "incidents_table", "sites_tables", "workloads_table"]

MIN_MS = 60_000
BLOCK_ROWS = 4_000_000  # health-check rows drawn at once (the classic 30 days are 3,456,000)
WORKLOAD_STUBS = {"svc-invoicing": "invoice-processing", "svc-assistant": "support-assistant"}
WORKLOAD_SUFFIXES = ("api", "batch", "sync", "reports", "stream", "exports", "backfill", "webhooks")
SITES = (
    ("site-edge-eu-1", "region-eu-west"),
    ("site-edge-us-1", "region-us-east"),
    ("site-edge-ap-1", "region-ap-south"),
    ("site-onprem-hq", None),
    ("site-onprem-dc2", None),
)
CANDIDATES_PER_SERVICE = 30 / CLASSIC_SERVICES


def health_blocks(
    rng: np.random.Generator, topo: Topology, status: np.ndarray, start_ms: int
) -> Iterator[tuple[int, pa.Table]]:
    """(first minute, rows) per block of whole days, sorted by (minute, service, probe)."""
    n_min, n_svc, n_probes = status.shape
    per_day = 1440 * n_svc * n_probes
    block_min = max(1, BLOCK_ROWS // per_day) * 1440
    kinds = [topo.kind[s] for s in topo.ids]
    median_ms = {"region": (3, 12), "saas": (80, 300), "edge": (8, 30), "internal": (15, 120)}
    base = np.array([rng.uniform(*median_ms[k]) for k in kinds])
    for m0 in range(0, n_min, block_min):
        block = status[m0 : m0 + block_min]
        yield m0, _health_table(rng, topo, block, base, start_ms + m0 * MIN_MS, m0)


def _health_table(
    rng: np.random.Generator, topo: Topology, status: np.ndarray, base: np.ndarray, start_ms: int, m0: int
) -> pa.Table:
    """One row per (minute, service, probe); metrics drawn to match each status."""
    n_min, n_svc, n_probes = status.shape
    minute_of_day = (m0 + np.arange(n_min)) % 1440
    diurnal = 1 + 0.25 * np.sin(2 * np.pi * (minute_of_day - 360) / 1440)  # busiest at 12:00 UTC
    probe_f = 1 + 0.08 * np.arange(n_probes)
    lat = diurnal[:, None, None] * base[None, :, None] * probe_f[None, None, :]
    lat = (lat * np.exp(0.3 * rng.standard_normal(status.shape))).ravel()
    st = status.ravel()
    n = st.size
    deg, down = np.flatnonzero(st == DEGRADED), np.flatnonzero(st == DOWN)
    lat[deg] *= np.exp(rng.normal(np.log(5.0), 0.4, deg.size))
    err = np.minimum(rng.exponential(0.002, n), 1.0)
    err[deg] = rng.beta(2, 8, deg.size)
    err[down] = rng.beta(18, 2, down.size)
    code = np.full(n, 200, np.int16)
    code[deg] = rng.choice(np.array([200, 429, 503], np.int16), deg.size, p=[0.5, 0.3, 0.2])
    code[down] = rng.choice(np.array([503, 502, 504, 0], np.int16), down.size, p=[0.4, 0.2, 0.15, 0.25])
    ts = np.repeat(start_ms + np.arange(n_min, dtype=np.int64) * MIN_MS, n_svc * n_probes)
    svc_idx = np.tile(np.repeat(np.arange(n_svc, dtype=np.int32), n_probes), n_min)
    probe_idx = np.tile(np.arange(n_probes, dtype=np.int32), n_min * n_svc)
    probes = [f"probe-{chr(ord('a') + p)}" for p in range(n_probes)]
    return pa.Table.from_arrays(
        [
            pa.array(ts).view(TABLES["health_checks"].field("ts").type),
            pa.array(list(topo.ids)).take(pa.array(svc_idx)),
            pa.array(probes).take(pa.array(probe_idx)),
            pa.array(list(STATUSES)).take(pa.array(st)),
            pa.array(np.round(lat, 1), mask=st == DOWN),
            pa.array(np.round(err, 4)),
            pa.array(code, mask=code == 0),
        ],
        schema=TABLES["health_checks"],
    )


def incidents_table(rng: np.random.Generator, topo: Topology, events: list[Event], start_ms: int) -> pa.Table:
    """One resolved incident per planted outage (degradations and flaps get none)."""
    outages = [e for e in events if e.kind != "degraded"]
    rows: dict[str, list] = {k: [] for k in TABLES["incidents"].names}
    for i, ev in enumerate(outages, 1):
        dependents = sorted(ev.down - {ev.root})
        if ev.kind == "region":
            sev, text = 1, f"Region {ev.root} unavailable; {len(dependents)} hosted services down"
        elif ev.kind == "saas":
            sev, text = (
                2,
                (
                    f"SaaS {ev.root} outage; {len(dependents)} hard dependents down, "
                    f"{len(ev.degraded)} soft dependents degraded"
                ),
            )
        else:
            sev = {0: 2, 1: 3}.get(topo.tier[ev.root], 4)
            text = f"{ev.root} down" + (f", taking down {', '.join(dependents)}" if dependents else "")
        rows["incident_id"].append(f"INC-{i:04d}")
        rows["started_at"].append(start_ms + (ev.start_min + int(rng.integers(0, 2))) * MIN_MS)
        rows["resolved_at"].append(start_ms + (ev.start_min + ev.dur_min + int(rng.integers(0, 2))) * MIN_MS)
        rows["severity"].append(sev)
        rows["affected"].append([ev.root, *dependents])
        rows["summary"].append(f"{text} for about {ev.dur_min} min")
    ts_type = TABLES["incidents"].field("started_at").type
    for k in ("started_at", "resolved_at"):
        rows[k] = pa.array(rows[k], pa.int64()).view(ts_type)
    return pa.table(rows, schema=TABLES["incidents"])


def workloads_table(rng: np.random.Generator, topo: Topology, n_workloads: int) -> pa.Table:
    """Workloads on the internal services whose demand is 82-88% of the shared compute pool."""
    internal = [s for s in topo.ids if topo.kind[s] == "internal"]
    if not 1 <= n_workloads <= len(internal) * (1 + len(WORKLOAD_SUFFIXES)):
        raise ValueError(f"workloads must be 1..{len(internal) * (1 + len(WORKLOAD_SUFFIXES))} for this fleet")
    stub = {s: WORKLOAD_STUBS.get(s, s.removeprefix("svc-")) for s in internal}
    owners = {f"wl-{stub[s]}": s for s in internal[:n_workloads]}  # every internal service runs one
    while len(owners) < n_workloads:
        s = str(rng.choice(internal))
        owners.setdefault(f"wl-{stub[s]}-{rng.choice(WORKLOAD_SUFFIXES)}", s)
    ids = sorted(owners)
    svc = [owners[w] for w in ids]
    tier = [
        topo.tier[s] if w == f"wl-{stub[s]}" or rng.random() < 0.7 else int(rng.integers(0, 4))
        for w, s in zip(ids, svc)
    ]
    value = np.round(10 ** rng.uniform(1.0, 3.0, len(ids)) * 3.0 ** (3 - np.array(tier)), 2)
    raw = rng.lognormal(0.0, 0.8, len(ids))
    # Demand draws on the shared compute pool of all regions: 82-88% of it, so losing a
    # large region (and the capacity it carries) forces shedding among the survivors.
    load = rng.uniform(0.82, 0.88)
    demand = raw * load * topo.pool / raw.sum()
    demand = np.round(demand, 2)
    deps_of: dict[str, list[tuple[str, bool]]] = {}
    for (x, d), h in topo.deps.items():
        deps_of.setdefault(x, []).append((d, h))
    requires, risks = [], []
    for i, s in enumerate(svc):
        deps = sorted(deps_of.get(s, []))
        req = sorted(d for d, h in deps if h or (topo.kind[d] != "region" and rng.random() < 0.25))
        requires.append(req)
        risks.append(
            [
                {"depends_on": d, "cost_per_hour": round(float(value[i] * rng.uniform(0.05, 1.2)), 2)}
                for d, h in deps
                if d not in req and rng.random() < 0.7
            ]
        )
    min_share = np.where(
        (np.array(tier) == 0) & (rng.random(len(ids)) < 0.6), np.round(rng.uniform(0.25, 0.5, len(ids)), 2), 0.0
    )
    if not min_share.any():  # always at least one floor; a single 0.25 floor always fits below
        min_share[np.argmax(np.where(np.array(tier) == 0, value, -1.0))] = 0.25
    # Tier-0 floors must fit comfortably: half of what is left after losing the largest
    # region. Drop the largest floors until they do.
    spare = topo.pool - max(topo.capacity[r] for r in topo.regions)
    while (min_share * demand).sum() > 0.5 * spare:
        min_share[np.argmax(min_share * demand)] = 0.0
    return pa.table(
        {
            "workload_id": ids,
            "service_id": svc,
            "value_per_hour": value,
            "demand": demand,
            "requires": requires,
            "risks": risks,
            "min_share": min_share,
            "tier": tier,
            **dict.fromkeys(("switch_cost_s", "warmup_s"), pa.nulls(len(ids), pa.float64())),  # backtest defaults
        },
        schema=TABLES["workloads"],
    )


def sites_tables(rng: np.random.Generator, topo: Topology) -> tuple[pa.Table, pa.Table]:
    """Edge/on-prem sites with budgets, and standby candidates that cost more than fits."""
    extra = [(f"site-edge-{r.removeprefix('region-')}-1", r) for r in topo.regions if r not in REGIONS]
    sites_ = (*SITES, *extra)
    sites = pa.table(
        {
            "site_id": [s for s, _ in sites_],
            "region": [r for _, r in sites_],
            "budget": np.round(rng.uniform(60, 160, len(sites_)), 0),
        },
        schema=TABLES["sites"],
    )
    services = [s for s in topo.ids if topo.kind[s] != "region"]
    pairs = [(s, site) for s in services for site, _ in sites_]
    n_candidates = round(CANDIDATES_PER_SERVICE * len(topo.ids))
    pick = sorted(pairs[i] for i in rng.choice(len(pairs), n_candidates, replace=False))
    cands = pa.table(
        {
            "candidate_id": [f"sb-{i:03d}" for i in range(1, len(pick) + 1)],
            "service_id": [s for s, _ in pick],
            "site_id": [site for _, site in pick],
            "cost": np.round(rng.uniform(10, 70, len(pick)), 2),
            "coverage": np.round(rng.uniform(0.3, 1.0, len(pick)), 2),
        },
        schema=TABLES["standby_candidates"],
    )
    return sites, cands
