"""Pull a Prometheus range into telemetry tables: once into a new folder, or incrementally.

``import_prometheus`` writes a complete new folder (like the other importers). ``pull_into``
keeps a *landing folder* (the nightly's ``data_dir``) growing: each pull queries only
[watermark, until), adds ``health_checks/<name>-<since>-<until>.parquet`` (a new file, which the
incremental ingest reads whole and nothing else), rewrites ``incidents/<name>.parquet`` (an
incident still open at the last watermark is continued, not duplicated), adds new services to
``services.parquet`` and writes the default dependencies/workloads only when absent. The
watermark is ``_pull/<name>.json`` in the landing folder (``_`` files are not telemetry); it
moves only after every file is in place, so a failed pull (refused, unreachable) writes nothing
and the next one starts from the same point. Ranges are cut to the ``resolution_min`` grid so
that consecutive pulls never produce the same health-check bin twice.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from policies.schema import TABLES
from policies.telemetry.importers.common import default_tables, write_tables
from policies.telemetry.importers.http import ConnectorError
from policies.telemetry.importers.prometheus import PrometheusPull, PrometheusSpec, fetch_prometheus

__all__ = ["import_prometheus", "pull_into", "read_watermark"]


def import_prometheus(
    spec: PrometheusSpec, out_dir: str | Path, since_ms: int, until_ms: int, overlay: str | None = None
) -> dict[str, int]:
    """Every table of [since, until) into a new folder; returns rows per table."""
    since_ms, until_ms = _grid(spec, since_ms), _grid(spec, until_ms)
    pull = fetch_prometheus(spec, since_ms, until_ms)
    _require_series(spec, pull)
    services = _services_table(pull.services)
    return write_tables(Path(out_dir), services, pull.health, pull.incidents, overlay)


def read_watermark(landing: str | Path, name: str) -> int | None:
    path = Path(landing) / "_pull" / f"{name}.json"
    return json.loads(path.read_text()).get("until_ms") if path.is_file() else None


def pull_into(
    spec: PrometheusSpec,
    landing: str | Path,
    name: str,
    *,
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> dict[str, object]:
    """Fetch [watermark (or since), until (default now)) and add it to ``landing``; see module doc."""
    landing = Path(landing)
    mark = read_watermark(landing, name)
    start = mark if mark is not None else since_ms
    if start is None:
        raise ConnectorError(
            f"prometheus: source {name!r} has no watermark yet in {landing}; give the first pull a start "
            "(--since, or `since` in its [sources] entry)"
        )
    start = _grid(spec, start)
    end = _grid(spec, until_ms if until_ms is not None else int(time.time() * 1000))
    if end <= start:
        return {"source": name, "since_ms": start, "until_ms": end, "health_checks": 0, "incidents": 0, "requests": 0}
    pull = fetch_prometheus(spec, start, end)
    if mark is None:
        _require_series(spec, pull)
    _write_pull(landing, name, pull)
    return {
        "source": name,
        "since_ms": start,
        "until_ms": end,
        "health_checks": pull.rows,
        "incidents": pull.incidents.num_rows,
        "requests": pull.requests,
    }


def _write_pull(landing: Path, name: str, pull: PrometheusPull) -> None:
    (landing / "health_checks").mkdir(parents=True, exist_ok=True)
    (landing / "incidents").mkdir(exist_ok=True)
    (landing / "_pull").mkdir(exist_ok=True)
    if pull.health:
        checks = pa.concat_tables(pull.health).cast(TABLES["health_checks"])
        _atomic(landing / "health_checks" / f"{name}-{pull.since_ms}-{pull.until_ms}.parquet", checks)
    _atomic(
        landing / "incidents" / f"{name}.parquet", _merge_incidents(landing / "incidents" / f"{name}.parquet", pull)
    )
    services_path = landing / "services.parquet"
    old = pq.read_table(services_path).cast(TABLES["services"]) if services_path.is_file() else None
    known = set(old["service_id"].to_pylist()) if old is not None else set()
    new = [s for s in pull.services if s not in known]
    if old is None or new:
        parts = [old] if old is not None else [default_tables(pull.services)["region"]]
        _atomic(services_path, pa.concat_tables([*parts, _services_table(new)]))
    for table, rows in default_tables(pull.services).items():
        if table != "region" and not any(landing.glob(f"{table}.*")) and not (landing / table).is_dir():
            _atomic(landing / f"{table}.parquet", rows.cast(TABLES[table]))
    tmp = landing / "_pull" / f".{name}.json.tmp"
    tmp.write_text(json.dumps({"until_ms": pull.until_ms, "since_ms": pull.since_ms}) + "\n")
    os.replace(tmp, landing / "_pull" / f"{name}.json")


def _merge_incidents(path: Path, pull: PrometheusPull) -> pa.Table:
    """Old incidents plus new ones; a new incident starting at the pull's start continues an open one."""
    old = pq.read_table(path).to_pylist() if path.is_file() else []
    open_by = {r["affected"][0]: r for r in old if r["resolved_at"] is None and r["affected"]}
    rows = list(old)
    for inc in pull.incidents.to_pylist():
        prev = open_by.get(inc["affected"][0])
        if prev is not None and int(inc["started_at"].timestamp() * 1000) == pull.since_ms:
            prev["resolved_at"] = inc["resolved_at"]
            continue
        rows.append(inc)
    return pa.Table.from_pylist(rows, schema=TABLES["incidents"])


def _services_table(ids: list[str]) -> pa.Table:
    return pa.Table.from_pylist(
        [{"service_id": s, "kind": "internal", "tier": 1, "capacity": 0.0, "region": None} for s in ids],
        schema=TABLES["services"],
    )


def _require_series(spec: PrometheusSpec, pull: PrometheusPull) -> None:
    if not pull.health:
        raise ConnectorError(
            f"prometheus: {spec.success_query!r} returned no series with a {'/'.join(spec.service_labels)} "
            "label in the range; check the query, the labels and --since/--until"
        )


def _grid(spec: PrometheusSpec, ms: int) -> int:
    res = spec.resolution_min * 60_000
    return int(ms) // res * res


def _atomic(path: Path, table: pa.Table) -> None:
    tmp = path.with_name("." + path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
