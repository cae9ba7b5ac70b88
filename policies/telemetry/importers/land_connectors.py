"""The nightly's pulls of the incident tool and the catalog (the rules are in :mod:`.land`'s doc)."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from policies.schema import TABLES
from policies.telemetry.importers.backstage import catalog_tables, fetch_catalog, read_catalog_files, write_catalog
from policies.telemetry.importers.http import ConnectorError
from policies.telemetry.importers.land import land_files, read_manifest, write_manifest
from policies.telemetry.importers.pagerduty import fetch_pagerduty, incident_rows, read_export
from policies.telemetry.importers.spec import SourceEntry

__all__ = ["pull_pagerduty", "pull_backstage"]


def pull_pagerduty(
    entry: SourceEntry, landing: Path, *, since_ms: int | None = None, until_ms: int | None = None
) -> dict[str, object]:
    """A saved export whole, or the live API from the watermark (or the oldest open incident's start)."""
    spec, rel = entry.spec, f"incidents/source={entry.name}/incidents.parquet"
    if spec.export:
        table, requests, extra = incident_rows(spec, read_export(spec.export)), 0, {}
    else:
        mark = read_manifest(landing, entry.name).get("until_ms")
        start = mark if mark is not None else since_ms
        if start is None:
            raise ConnectorError(
                f"pagerduty: source {entry.name!r} has no watermark yet in {landing}; give the first pull a start "
                "(--since, or `since` in its [sources] entry), or a saved `export`"
            )
        end = int(until_ms if until_ms is not None else time.time() * 1000)
        old = pq.read_table(landing / rel).to_pylist() if (landing / rel).is_file() else []
        opened = [int(r["started_at"].timestamp() * 1000) for r in old if r["resolved_at"] is None]
        got, requests = fetch_pagerduty(spec, min([start, *opened]), end)
        rows = {r["incident_id"]: r for r in old} | {r["incident_id"]: r for r in incident_rows(spec, got).to_pylist()}
        ordered = sorted(rows.values(), key=lambda r: (r["started_at"], r["incident_id"]))
        table, extra = pa.Table.from_pylist(ordered, schema=TABLES["incidents"]), {"since_ms": start, "until_ms": end}
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    out = land_files(landing, entry, [(rel, "", sink.getvalue().to_pybytes())], extra)
    return out | {"tables": {"incidents": table.num_rows}, "requests": requests} | extra


def pull_backstage(entry: SourceEntry, landing: Path) -> dict[str, object]:
    """The catalog now: its services over ``services.parquet``, its dependencies as ``dependencies.parquet``."""
    spec = entry.spec
    if not spec.files and not spec.url:
        raise ConnectorError(
            f'backstage source {entry.name!r}: set files = ["catalog"] (catalog-info.yaml files or folders) '
            'or url = "https://backstage.internal"'
        )
    entities, requests = (read_catalog_files(list(spec.files)), 0) if spec.files else fetch_catalog(spec)
    tables = catalog_tables(spec, entities)
    before = set(read_manifest(landing, entry.name).get("services", []))
    now = tables["services"]["service_id"].to_pylist()
    rows = write_catalog(landing, tables, frozenset(before - set(now)))
    write_manifest(landing, entry.name, {"kind": "backstage", "services": sorted(now)})
    return {"source": entry.name, "kind": "backstage", "tables": rows, "requests": requests}
