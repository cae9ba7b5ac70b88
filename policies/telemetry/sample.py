"""A deterministic, realistic sample of outage telemetry: the bundled demo data.

Why: the pipeline, its tests and the quickstart need telemetry with known truths planted in
it (one region outage, one SaaS outage with its hard dependents down and soft dependents
degraded, single-service outages and degradations, flapping probes, quiet services), so that
what the pipeline estimates can be checked against what was planted. Everything comes from
``np.random.default_rng(seed)``; the start date is fixed, never "now", and the same seed gives
the same tables and the same Parquet bytes. Health checks are generated with numpy, one loop
per service or outage event at most, so the 30-day sample (about 3.5M rows) takes seconds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from policies.graph import close_down_set, hard_dependents
from policies.schema import STATUSES, TABLES

__all__ = ["generate_sample", "write_sample"]

DEFAULT_START = "2026-10-01"
REGIONS = {"region-eu-west": 400.0, "region-us-east": 400.0, "region-ap-south": 200.0}
SAAS_TIERS = {
    "saas-payments": 0,
    "saas-identity": 0,
    "saas-invoice-validation": 1,
    "saas-llm-api": 1,
    "saas-email": 2,
    "saas-search": 2,
    "saas-sms": 2,
    "saas-maps": 3,
}
EDGES = ("edge-cdn", "edge-gateway")
INTERNAL = (
    "svc-checkout",
    "svc-cart",
    "svc-orders",
    "svc-invoicing",
    "svc-billing",
    "svc-ledger",
    "svc-payouts",
    "svc-catalog",
    "svc-inventory",
    "svc-pricing",
    "svc-search",
    "svc-recommendations",
    "svc-notifications",
    "svc-accounts",
    "svc-auth",
    "svc-shipping",
    "svc-returns",
    "svc-reporting",
    "svc-analytics",
    "svc-fraud",
    "svc-support",
    "svc-assistant",
    "svc-documents",
    "svc-geo",
    "svc-media",
    "svc-audit",
    "svc-scheduler",
)
# The dependencies every seed shares, so the stories (checkout needs payments, invoicing needs
# the validation SaaS) hold; the seed adds the rest.
STORY_DEPS = (
    ("svc-checkout", "saas-payments", True),
    ("svc-orders", "saas-payments", False),
    ("svc-invoicing", "saas-invoice-validation", True),
    ("svc-ledger", "saas-invoice-validation", False),
    ("svc-notifications", "saas-email", True),
    ("svc-notifications", "saas-sms", False),
    ("svc-assistant", "saas-llm-api", True),
    ("svc-auth", "saas-identity", True),
    ("svc-shipping", "saas-maps", False),
    ("svc-catalog", "saas-search", False),
)
TIER0_INTERNAL = ("svc-checkout", "svc-auth")
SITES = (
    ("site-edge-eu-1", "region-eu-west"),
    ("site-edge-us-1", "region-us-east"),
    ("site-edge-ap-1", "region-ap-south"),
    ("site-onprem-hq", None),
    ("site-onprem-dc2", None),
)
WORKLOAD_STUBS = {"svc-invoicing": "invoice-processing", "svc-assistant": "support-assistant"}
WORKLOAD_SUFFIXES = ("api", "batch", "sync", "reports", "stream", "exports", "backfill", "webhooks")
N_WORKLOADS, N_CANDIDATES = 60, 30
SINGLE_REGION_SHARE = 0.2  # internal services pinned to their home region
UP, DEGRADED, DOWN = 0, 1, 2  # indices into schema.STATUSES
MARGIN_MIN, GAP_MIN, FLAP_P = 30, 30, 0.005
MIN_MS = 60_000
PARQUET_OPTIONS = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "version": "2.6",
    "data_page_version": "1.0",
}


@dataclass(frozen=True)
class _Topology:
    ids: tuple[str, ...]  # sorted service ids
    kind: dict[str, str]
    tier: dict[str, int]
    capacity: dict[str, float]
    region: dict[str, str | None]
    deps: dict[tuple[str, str], bool]  # (service_id, depends_on) -> hard

    def edges(self) -> list[tuple[str, str, bool]]:
        return [(s, d, h) for (s, d), h in sorted(self.deps.items())]


@dataclass(frozen=True)
class _Event:
    kind: str  # region | saas | single | degraded
    root: str
    start_min: int
    dur_min: int
    down: frozenset[str]
    degraded: frozenset[str]


def generate_sample(
    seed: int = 7, *, days: int = 30, probes: int = 2, start: str = DEFAULT_START
) -> dict[str, pa.Table]:
    """Build every telemetry table for ``days`` days from ``start`` (a UTC midnight).

    Returns tables keyed like ``schema.TABLES``, each exactly of its schema.
    """
    if not isinstance(days, int) or days < 1:
        raise ValueError(f"days must be a positive integer, got {days!r}")
    if not isinstance(probes, int) or not 1 <= probes <= 26:
        raise ValueError(f"probes must be an integer in 1..26, got {probes!r}")
    start_ms = _parse_start(start)
    # Independent streams per part, so e.g. the topology does not change with ``days``.
    rng_topo, rng_plan, rng_checks, rng_inc, rng_work, rng_sites = np.random.default_rng(seed).spawn(6)
    topo = _build_topology(rng_topo)
    n_min = days * 1440
    events, quiet = _plan_events(rng_plan, topo, n_min)
    status = _simulate_status(rng_checks, topo, events, quiet, n_min, probes)
    sites, candidates = _build_sites(rng_sites, topo)
    tables = {
        "services": pa.table(
            {
                "service_id": list(topo.ids),
                "kind": [topo.kind[s] for s in topo.ids],
                "tier": [topo.tier[s] for s in topo.ids],
                "capacity": [topo.capacity[s] for s in topo.ids],
                "region": [topo.region[s] for s in topo.ids],
            },
            schema=TABLES["services"],
        ),
        "dependencies": pa.table(
            dict(zip(("service_id", "depends_on", "hard"), zip(*topo.edges()))), schema=TABLES["dependencies"]
        ),
        "health_checks": _health_table(rng_checks, topo, status, start_ms),
        "incidents": _incidents_table(rng_inc, topo, events, start_ms),
        "workloads": _workloads_table(rng_work, topo),
        "sites": sites,
        "standby_candidates": candidates,
    }
    return {name: tables[name] for name in TABLES}


def write_sample(
    out_dir: str | Path, seed: int = 7, *, days: int = 30, probes: int = 2, start: str = DEFAULT_START
) -> dict[str, list[Path]]:
    """Write the sample as Parquet (``health_checks/<day>.parquet`` per UTC day); never overwrite.

    Existing files are checked before any work. Every file is written under a temporary name
    in its folder and renamed only once all of them were written, so a failure while
    generating or writing (disk full, a crash) leaves no partial sample behind.
    """
    out = Path(out_dir)
    start_ms = _parse_start(start)
    day_names = [_day_name(start_ms + d * 86_400_000) for d in range(max(int(days), 0))]
    targets = [out / f"{name}.parquet" for name in TABLES if name != "health_checks"]
    targets += [out / "health_checks" / f"{d}.parquet" for d in day_names]
    clashes = [str(p) for p in targets if p.exists()]
    hc_dir = out / "health_checks"
    if hc_dir.is_dir():
        clashes += sorted(str(p) for p in hc_dir.glob("*.parquet") if str(p) not in clashes)
    if clashes:
        raise FileExistsError(
            f"refusing to overwrite {len(clashes)} existing sample file(s) in {out}, e.g. "
            f"{', '.join(clashes[:3])}; inputs are never overwritten: choose an empty folder "
            "or remove the old sample first"
        )
    tables = generate_sample(seed, days=days, probes=probes, start=start)
    plan: dict[str, list[tuple[Path, pa.Table]]] = {}
    for name, table in tables.items():
        if name == "health_checks":
            ts = table.column("ts").combine_chunks().view(pa.int64()).to_numpy()
            bounds = np.searchsorted(ts, start_ms + np.arange(len(day_names) + 1) * 86_400_000)
            plan[name] = [
                (hc_dir / f"{d}.parquet", table.slice(bounds[i], bounds[i + 1] - bounds[i]))
                for i, d in enumerate(day_names)
            ]
        else:
            plan[name] = [(out / f"{name}.parquet", table)]
    hc_dir.mkdir(parents=True, exist_ok=True)
    written: list[tuple[Path, Path]] = []
    try:
        for name, path, table in ((n, p, t) for n, items in plan.items() for p, t in items):
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            written.append((tmp, path))
            sort = [pq.SortingColumn(i) for i in range(3)] if name == "health_checks" else None
            pq.write_table(table, tmp, sorting_columns=sort, **PARQUET_OPTIONS)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        for tmp, path in written:
            if path.exists():  # appeared while we were writing
                raise FileExistsError(f"refusing to overwrite {path}, which appeared during the write")
            os.replace(tmp, path)
    finally:
        for tmp, _ in written:
            tmp.unlink(missing_ok=True)
    return {name: [p for p, _ in items] for name, items in plan.items()}


def _parse_start(start: str) -> int:
    """Epoch milliseconds of ``start``, which must be a UTC midnight (day files align to it)."""
    dt = datetime.fromisoformat(start)
    dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    if (dt.hour, dt.minute, dt.second, dt.microsecond) != (0, 0, 0, 0):
        raise ValueError(f"start must be a UTC midnight such as '2026-10-01', got {start!r}")
    return int(dt.timestamp()) * 1000


def _day_name(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def _build_topology(rng: np.random.Generator) -> _Topology:
    """Services and an acyclic dependency graph; hard internal edges stay within a region."""
    regions = list(REGIONS)
    kind = {
        **dict.fromkeys(regions, "region"),
        **dict.fromkeys(SAAS_TIERS, "saas"),
        **dict.fromkeys(EDGES, "edge"),
        **dict.fromkeys(INTERNAL, "internal"),
    }
    tier = {**dict.fromkeys(regions, 0), **SAAS_TIERS, **dict.fromkeys(EDGES, 0)}
    tier |= {s: int(t) for s, t in zip(INTERNAL, rng.choice(4, len(INTERNAL), p=[0.15, 0.3, 0.3, 0.25]))}
    tier |= dict.fromkeys(TIER0_INTERNAL, 0)
    # At least three services per region, the rest in proportion to region capacity.
    share = np.array(list(REGIONS.values())) / sum(REGIONS.values())
    homes = [r for r in regions for _ in range(3)]
    homes += list(rng.choice(regions, len(INTERNAL) - len(homes), p=share))
    homes = [str(h) for h in rng.permutation(homes)] + [str(h) for h in rng.choice(regions, len(EDGES), p=share)]
    region = {**dict.fromkeys(regions), **dict.fromkeys(SAAS_TIERS), **dict(zip(INTERNAL + EDGES, homes))}
    capacity = dict(REGIONS)
    for s in (*SAAS_TIERS, *EDGES, *INTERNAL):
        capacity[s] = float(np.round(rng.uniform(20, 200) * (5 if kind[s] == "saas" else 1), 1))
    deps: dict[tuple[str, str], bool] = {(s, d): h for s, d, h in STORY_DEPS}
    saas = list(SAAS_TIERS)
    order = [str(s) for s in rng.permutation(INTERNAL)]  # topological order of internal services
    for i, s in enumerate(order):
        # Most services run active-active across regions (soft on their home region: a
        # region outage degrades them and shrinks the shared compute pool); some are
        # pinned to one region (hard) and go down with it.
        deps[(s, region[s])] = bool(rng.random() < SINGLE_REGION_SHARE)
        for d in rng.choice(saas, int(rng.integers(1, 3)), replace=False):
            deps.setdefault((s, str(d)), bool(rng.random() < 0.35))
        if i:
            for d in rng.choice(order[:i], min(i, int(rng.integers(0, 4))), replace=False):
                same = region[str(d)] == region[s]
                deps.setdefault((s, str(d)), bool(same and rng.random() < 0.5))
    for e in EDGES:
        deps[(e, region[e])] = True
        local = [s for s in order if region[s] == region[e]]
        deps[(e, str(rng.choice(local)))] = True
        for d in rng.choice(order, 2, replace=False):
            deps.setdefault((e, str(d)), False)
    return _Topology(tuple(sorted(kind)), kind, tier, capacity, region, deps)


def _plan_events(rng: np.random.Generator, topo: _Topology, n_min: int) -> tuple[list[_Event], frozenset[str]]:
    """The seeded outage schedule; windows of events that touch a service never overlap."""
    dependents = hard_dependents(topo.edges())
    soft: dict[str, set[str]] = {}
    for s, d, hard in topo.edges():
        if not hard:
            soft.setdefault(d, set()).add(s)
    busy = {s: np.zeros(n_min, bool) for s in topo.ids}
    events: list[_Event] = []

    def place(kind: str, root: str, lo: int, hi: int) -> None:
        down = frozenset([root]) if kind == "degraded" else close_down_set([root], dependents)
        degraded = frozenset() if kind == "degraded" else frozenset(x for d in down for x in soft.get(d, ())) - down
        for _ in range(200):
            dur = int(rng.integers(lo, hi + 1))
            if n_min - dur - MARGIN_MIN <= MARGIN_MIN:
                return
            t0 = int(rng.integers(MARGIN_MIN, n_min - dur - MARGIN_MIN))
            a, b = max(0, t0 - GAP_MIN), t0 + dur + GAP_MIN
            if not any(busy[s][a:b].any() for s in down | degraded):
                for s in down | degraded:
                    busy[s][a:b] = True
                events.append(_Event(kind, root, t0, dur, down, degraded))
                return

    days = n_min / 1440
    place("region", str(rng.choice(list(REGIONS))), 40, 90)
    place("saas", str(rng.choice(["saas-invoice-validation", "saas-payments"])), 30, 120)
    hit = frozenset().union(*(e.down for e in events))
    calm = [s for s in INTERNAL if s not in hit]
    quiet = frozenset(str(s) for s in rng.choice(calm, min(3, len(calm)), replace=False))
    small = [
        s
        for s in topo.ids
        if topo.kind[s] != "region" and len(down := close_down_set([s], dependents)) <= 3 and not down & quiet
    ]
    saas_pool = [s for s in small if topo.kind[s] == "saas"]
    n_single = max(2, round(8 * days / 30))
    roots = [str(rng.choice(saas_pool))] if saas_pool else []  # at least one SaaS on its own
    others = [s for s in small if s not in roots]
    roots += [str(s) for s in rng.choice(others, min(len(others), n_single - len(roots)), replace=False)]
    for r in roots:
        place("single", r, 5, 60)
    pool = [s for s in topo.ids if topo.kind[s] != "region" and s not in quiet]
    for r in rng.choice(pool, max(1, round(6 * days / 30)), replace=False):
        place("degraded", str(r), 10, 90)
    return sorted(events, key=lambda e: (e.start_min, e.root)), quiet


def _simulate_status(
    rng: np.random.Generator, topo: _Topology, events: list[_Event], quiet: frozenset[str], n_min: int, n_probes: int
) -> np.ndarray:
    """Status codes shaped (minute, service, probe): planted events, then one-probe flaps."""
    col = {s: j for j, s in enumerate(topo.ids)}
    status = np.zeros((n_min, len(topo.ids), n_probes), np.int8)
    for ev in events:
        skew = rng.integers(-1, 2, size=(n_probes, 2))
        skew[0] = 0  # the first probe is the reference; others see it a minute early or late
        code = DEGRADED if ev.kind == "degraded" else DOWN
        marks = [(s, code) for s in sorted(ev.down)] + [(s, DEGRADED) for s in sorted(ev.degraded)]
        for s, c in marks:
            lag = 0 if s == ev.root else int(rng.integers(0, 2))  # dependents follow a bit later
            for p in range(n_probes):
                a = max(0, ev.start_min + lag + int(skew[p, 0]))
                b = min(n_min, ev.start_min + ev.dur_min + int(skew[p, 1]))
                view = status[a:b, col[s], p]
                np.maximum(view, c, out=view)
    flappy = [s for s in topo.ids if topo.kind[s] in ("internal", "edge") and s not in quiet]
    for s in sorted(str(x) for x in rng.choice(flappy, 2, replace=False)):
        j = col[s]
        hit = rng.random((n_min, n_probes)) < FLAP_P
        kind = np.where(rng.random((n_min, n_probes)) < 0.6, DOWN, DEGRADED).astype(np.int8)
        lone = hit & (hit.sum(axis=1, keepdims=True) == 1)  # one probe only
        lone[1:] &= ~hit[:-1]
        lone[:-1] &= ~hit[1:]  # one minute only
        calm = (status[:, j, :] == UP).all(axis=1, keepdims=True)
        calm[1:] &= calm[:-1].copy()
        calm[:-1] &= calm[1:].copy()  # and up around it, so the blip stands alone
        status[:, j, :] = np.where(lone & calm, kind, status[:, j, :])
    return status


def _health_table(rng: np.random.Generator, topo: _Topology, status: np.ndarray, start_ms: int) -> pa.Table:
    """One row per (minute, service, probe), sorted so; metrics drawn to match each status."""
    n_min, n_svc, n_probes = status.shape
    kinds = [topo.kind[s] for s in topo.ids]
    median_ms = {"region": (3, 12), "saas": (80, 300), "edge": (8, 30), "internal": (15, 120)}
    base = np.array([rng.uniform(*median_ms[k]) for k in kinds])
    minute_of_day = np.arange(n_min) % 1440
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


def _incidents_table(rng: np.random.Generator, topo: _Topology, events: list[_Event], start_ms: int) -> pa.Table:
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


def _workloads_table(rng: np.random.Generator, topo: _Topology) -> pa.Table:
    """About 60 workloads whose demand is 80-90% of the regions' total capacity."""
    internal = [s for s in topo.ids if topo.kind[s] == "internal"]
    stub = {s: WORKLOAD_STUBS.get(s, s.removeprefix("svc-")) for s in internal}
    owners = {f"wl-{stub[s]}": s for s in internal}  # every internal service runs one
    while len(owners) < N_WORKLOADS:
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
    # region (and the capacity it carries) forces shedding among the survivors.
    load = rng.uniform(0.82, 0.88)
    demand = raw * load * sum(REGIONS.values()) / raw.sum()
    demand = np.round(demand, 2)
    requires, risks = [], []
    for i, s in enumerate(svc):
        deps = sorted((d, h) for (x, d), h in topo.deps.items() if x == s)
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
    # Tier-0 floors must fit comfortably: half of what is left after losing the largest region; drop the largest.
    spare = sum(REGIONS.values()) - max(REGIONS.values())
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


def _build_sites(rng: np.random.Generator, topo: _Topology) -> tuple[pa.Table, pa.Table]:
    """Edge/on-prem sites with budgets, and standby candidates that cost more than fits."""
    sites = pa.table(
        {
            "site_id": [s for s, _ in SITES],
            "region": [r for _, r in SITES],
            "budget": np.round(rng.uniform(60, 160, len(SITES)), 0),
        },
        schema=TABLES["sites"],
    )
    services = [s for s in topo.ids if topo.kind[s] != "region"]
    pairs = [(s, site) for s in services for site, _ in SITES]
    pick = sorted(pairs[i] for i in rng.choice(len(pairs), N_CANDIDATES, replace=False))
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
