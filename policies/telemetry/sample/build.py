"""Generate the sample in memory, or write it day by day without holding the health checks whole.

Why: a 1,000-service month is 86M health-check rows (several GB as Arrow), so the writer streams
blocks of whole days to their day files; the in-memory form is for small samples and tests.
Both draw the same numbers, so they give the same tables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from policies.schema import TABLES
from policies.telemetry.sample.events import plan_events, simulate_status
from policies.telemetry.sample.fleet import CLASSIC_SERVICES, build_topology
from policies.telemetry.sample.tables import health_blocks, incidents_table, sites_tables, workloads_table

__all__ = ["CLASSIC_END", "CLASSIC_START", "default_start", "generate_sample", "write_sample"]

CLASSIC_START = "2026-10-01"
CLASSIC_END = "2026-11-01"  # exclusive: the classic month is October 2026
CLASSIC_DAYS = 30
PARQUET_OPTIONS = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "version": "2.6",
    "data_page_version": "1.0",
}


def default_start(days: int) -> str:
    """Spans up to 30 days start on 2026-10-01 (the classic sample); longer ones end on 2026-10-31.

    A fixed date, never "now", so the same arguments give the same bytes; ending there keeps
    every row in the past (a 120-day span from 2026-10-01 ran into 2027 and failed validation).
    """
    if days <= CLASSIC_DAYS:
        return CLASSIC_START
    return (datetime.fromisoformat(CLASSIC_END) - timedelta(days=days)).strftime("%Y-%m-%d")


@dataclass(frozen=True)
class _Plan:
    small: dict[str, pa.Table]  # every table but health_checks
    rng_checks: np.random.Generator
    topo: object
    status: np.ndarray
    start_ms: int


def _plan(seed: int, days: int, probes: int, start: str | None, services: int, workloads: int | None) -> _Plan:
    if not isinstance(days, int) or days < 1:
        raise ValueError(f"days must be a positive integer, got {days!r}")
    if not isinstance(probes, int) or not 1 <= probes <= 26:
        raise ValueError(f"probes must be an integer in 1..26, got {probes!r}")
    start_ms = _parse_start(default_start(days) if start is None else start)
    n_workloads = round(1.5 * services) if workloads is None else workloads
    # Independent streams per part, so e.g. the topology does not change with ``days``.
    rng_topo, rng_plan, rng_checks, rng_inc, rng_work, rng_sites = np.random.default_rng(seed).spawn(6)
    topo = build_topology(rng_topo, services)
    n_min = days * 1440
    events, quiet = plan_events(rng_plan, topo, n_min)
    status = simulate_status(rng_checks, topo, events, quiet, n_min, probes)
    sites, candidates = sites_tables(rng_sites, topo)
    small = {
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
        "incidents": incidents_table(rng_inc, topo, events, start_ms),
        "workloads": workloads_table(rng_work, topo, n_workloads),
        "sites": sites,
        "standby_candidates": candidates,
    }
    return _Plan(small, rng_checks, topo, status, start_ms)


def generate_sample(
    seed: int = 7,
    *,
    days: int = CLASSIC_DAYS,
    probes: int = 2,
    start: str | None = None,
    services: int = CLASSIC_SERVICES,
    workloads: int | None = None,
) -> dict[str, pa.Table]:
    """Build every telemetry table for ``days`` days from ``start`` (a UTC midnight; see ``default_start``).

    ``services`` (at least 40) sizes the fleet, ``workloads`` defaults to 1.5 per service.
    Returns tables keyed like ``schema.TABLES``, each exactly of its schema.
    """
    plan = _plan(seed, days, probes, start, services, workloads)
    blocks = [t for _, t in health_blocks(plan.rng_checks, plan.topo, plan.status, plan.start_ms)]
    health = blocks[0] if len(blocks) == 1 else pa.concat_tables(blocks)
    return {name: health if name == "health_checks" else plan.small[name] for name in TABLES}


def write_sample(
    out_dir: str | Path,
    seed: int = 7,
    *,
    days: int = CLASSIC_DAYS,
    probes: int = 2,
    start: str | None = None,
    services: int = CLASSIC_SERVICES,
    workloads: int | None = None,
) -> dict[str, list[Path]]:
    """Write the sample as Parquet (``health_checks/<day>.parquet`` per UTC day); never overwrite.

    Existing files are checked before any work. Every file is written under a temporary name
    in its folder and renamed only once all of them were written, so a failure while
    generating or writing (disk full, a crash) leaves no partial sample behind.
    """
    out = Path(out_dir)
    start_ms = _parse_start(default_start(int(days)) if start is None else start)
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
    plan = _plan(seed, days, probes, start, services, workloads)
    hc_dir.mkdir(parents=True, exist_ok=True)
    written: list[tuple[Path, Path]] = []
    paths: dict[str, list[Path]] = {name: [] for name in TABLES}

    def put(name: str, path: Path, table: pa.Table) -> None:
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        written.append((tmp, path))
        paths[name].append(path)
        sort = [pq.SortingColumn(i) for i in range(3)] if name == "health_checks" else None
        pq.write_table(table, tmp, sorting_columns=sort, **PARQUET_OPTIONS)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())

    try:
        for name, table in plan.small.items():
            put(name, out / f"{name}.parquet", table)
        rows_per_day = 1440 * plan.status.shape[1] * plan.status.shape[2]
        for m0, block in health_blocks(plan.rng_checks, plan.topo, plan.status, plan.start_ms):
            for i in range(block.num_rows // rows_per_day):
                table = block.slice(i * rows_per_day, rows_per_day)
                put("health_checks", hc_dir / f"{day_names[m0 // 1440 + i]}.parquet", table)
            del block
        for tmp, path in written:
            if path.exists():  # appeared while we were writing
                raise FileExistsError(f"refusing to overwrite {path}, which appeared during the write")
            os.replace(tmp, path)
    finally:
        for tmp, _ in written:
            tmp.unlink(missing_ok=True)
    return {name: paths[name] for name in TABLES}


def _parse_start(start: str) -> int:
    """Epoch milliseconds of ``start``, which must be a UTC midnight (day files align to it)."""
    dt = datetime.fromisoformat(start)
    dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    if (dt.hour, dt.minute, dt.second, dt.microsecond) != (0, 0, 0, 0):
        raise ValueError(f"start must be a UTC midnight such as '2026-10-01', got {start!r}")
    return int(dt.timestamp()) * 1000


def _day_name(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d")
