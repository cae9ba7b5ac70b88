"""What both importers share: status events -> resampled health checks, incidents, default tables.

A status history is an event log (a state holds until the next change), not a time series.
:func:`resample_events` lays it on a regular grid of ``resolution_min``: each bin reports the
*worst* state that held at any moment inside it, so an outage shorter than a bin is never lost.
Status pages say nothing about dependencies or workloads, so :func:`default_tables` writes a
documented, deterministic default: no dependencies, one synthetic compute region
``region-imported`` (capacity 100) and one workload per imported service (requires nothing but
its service; value and demand derived from the sha256 of its id; total demand 85% of capacity).
``--overlay DIR`` replaces any of those tables with the user's own.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from policies.schema import TABLES, with_optional_columns

__all__ = ["RANK", "slugify", "resample_events", "default_tables", "write_tables", "down_intervals", "REGION_ID"]

RANK = {"up": 0, "degraded": 1, "down": 2}
_STATUS = np.array(["up", "degraded", "down"], dtype=object)
REGION_ID = "region-imported"
_MS_PER_MIN = 60_000


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "site"


def resample_events(
    service: str,
    probe: str,
    t_ms: np.ndarray,
    status: np.ndarray,
    latency: np.ndarray,
    code: np.ndarray,
    end_ms: int,
    resolution_min: int,
) -> pa.Table:
    """Health checks every ``resolution_min`` from the first event to ``end_ms`` (worst state per bin)."""
    step = resolution_min * _MS_PER_MIN
    order = np.argsort(t_ms, kind="stable")
    t_ms, status, latency, code = t_ms[order], status[order], latency[order], code[order]
    start = int(t_ms[0]) // step * step
    grid = np.arange(start, max(int(end_ms), start) + 1, step, dtype=np.int64)
    at_start = np.maximum(np.searchsorted(t_ms, grid, side="right") - 1, 0)
    n = t_ms.size
    best = status[at_start].astype(np.int64) * (n + 1) + at_start  # rank first, then latest event
    inside = (t_ms - start) // step
    np.maximum.at(best, inside, status.astype(np.int64) * (n + 1) + np.arange(n))
    pick = best % (n + 1)
    lat, cod = latency[pick], code[pick]
    return pa.table(
        {
            "ts": pa.array(grid, pa.timestamp("ms", tz="UTC")),
            "service_id": pa.array([service] * grid.size, pa.string()),
            "probe": pa.array([probe] * grid.size, pa.string()),
            "status": pa.array(_STATUS[status[pick]].tolist(), pa.string()),
            "latency_ms": pa.array(np.where(np.isnan(lat), None, lat).tolist(), pa.float64()),
            "error_rate": pa.array(np.where(status[pick] == 2, 1.0, 0.0), pa.float64()),
            "http_code": pa.array([int(c) if 100 <= c <= 599 else None for c in cod], pa.int16()),
        }
    )


def _unit(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def default_tables(services: list[str]) -> dict[str, pa.Table]:
    """Dependencies (none), the synthetic region and one workload per service (see module doc)."""
    capacity = 100.0
    weights = np.array([0.5 + _unit("demand:" + s) for s in services])
    demand = weights / weights.sum() * capacity * 0.85 if services else weights
    workloads = [
        {
            "workload_id": f"wl-{s}",
            "service_id": s,
            "value_per_hour": round(100 + 900 * _unit("value:" + s), 2),
            "demand": round(float(d), 4),
            "requires": [],
            "risks": [],
            "min_share": 0.0,
            "tier": 2,
        }
        for s, d in zip(services, demand)
    ]
    return {
        "dependencies": TABLES["dependencies"].empty_table(),
        "workloads": pa.Table.from_pylist(workloads, schema=TABLES["workloads"]),
        "region": pa.Table.from_pylist(
            [{"service_id": REGION_ID, "kind": "region", "tier": 0, "capacity": capacity, "region": None}],
            schema=TABLES["services"],
        ),
    }


def write_tables(
    out_dir: Path,
    services: pa.Table,
    health: list[pa.Table],
    incidents: pa.Table,
    overlay: str | None = None,
    partition: str = "day",
) -> dict[str, int]:
    """Write every required table into a new folder (refuses to overwrite); returns rows per table."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists and is not empty; choose a new --out folder")
    ids = services["service_id"].to_pylist()
    defaults = default_tables(ids)
    tables = {
        "services": pa.concat_tables([services, defaults["region"]]),
        "incidents": incidents,
        "dependencies": defaults["dependencies"],
        "workloads": defaults["workloads"],
    }
    if overlay:
        extra = load_telemetry_overlay(overlay)
        if "services" in extra:
            keep = set(extra["services"]["service_id"].to_pylist())
            base = [r for r in tables["services"].to_pylist() if r["service_id"] not in keep]
            extra["services"] = pa.concat_tables(
                [pa.Table.from_pylist(base, schema=TABLES["services"]), extra["services"]]
            )
        tables |= extra
    tmp = out_dir.with_name(out_dir.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=False)
    for name, table in tables.items():
        table = with_optional_columns(name, table)
        pq.write_table(table.select(TABLES[name].names).cast(TABLES[name]), tmp / f"{name}.parquet")
    checks = pa.concat_tables(health).cast(TABLES["health_checks"])
    (tmp / "health_checks").mkdir()
    key = np.asarray(checks["ts"].cast(pa.int64()).to_numpy() // 86_400_000, dtype="datetime64[D]").astype(str)
    if partition == "month":
        key = np.array([k[:7] for k in key])
    for part in np.unique(key):
        pq.write_table(checks.filter(pa.array(key == part)), tmp / "health_checks" / f"{part}.parquet")
    if out_dir.exists():
        out_dir.rmdir()
    tmp.rename(out_dir)
    return {**{n: t.num_rows for n, t in tables.items()}, "health_checks": checks.num_rows}


def load_telemetry_overlay(overlay: str) -> dict[str, pa.Table]:
    """Tables of an overlay folder (any of services, dependencies, workloads, sites, standby_candidates)."""
    from policies.telemetry.ingest import read_part
    from policies.telemetry.sources import locate_source_files, open_source

    src = open_source(overlay)
    found = locate_source_files(src)
    return {
        n: pa.concat_tables([read_part(src, f).table for f in files]).select(TABLES[n].names).cast(TABLES[n])
        for n, files in found.items()
        if n not in ("health_checks", "incidents")
    }


def down_intervals(site: str, t_ms: np.ndarray, rank: np.ndarray, close_at: int | None) -> list[dict]:
    """Incident rows for every run of ``down`` events (a run still open ends at ``close_at``; None = open)."""
    out, start = [], None
    for t, r in zip(t_ms.tolist(), rank.tolist()):
        if r == RANK["down"] and start is None:
            start = t
        elif r != RANK["down"] and start is not None:
            out.append((start, t))
            start = None
    if start is not None:
        out.append((start, close_at))

    def ts(ms: int | None) -> datetime | None:
        return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)

    return [
        {
            "incident_id": f"{site}-{s}",
            "started_at": ts(s),
            "resolved_at": ts(e),
            "severity": 2,
            "affected": [site],
            "summary": f"{site} down",
        }
        for s, e in out
    ]
