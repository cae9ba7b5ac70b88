"""Ingest: read the telemetry source (folder, glob or URL) and fingerprint it."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from policies.ingest import Telemetry, load_telemetry, snapshot_id
from tasks.retry import retry_on_io_error

__all__ = ["ingest_telemetry"]


@task(name="ingest", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=retry_on_io_error)
def ingest_telemetry(source: str) -> Telemetry:
    """Read every table in ``source`` and compute its sha256 snapshot."""
    log = get_run_logger()
    telemetry = load_telemetry(source)
    rows = ", ".join(f"{k}={v:,}" for k, v in telemetry.rows.items())
    log.info("read %d tables from %s (%s); snapshot %s", len(telemetry.parts), source, rows,
             snapshot_id(telemetry.sha256)[:12])
    return telemetry
