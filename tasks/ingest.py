"""Ingest: read the telemetry source (folder, glob or URL) incrementally and fingerprint it."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from policies.telemetry.ingest import Telemetry, load_telemetry, snapshot_id
from policies.telemetry.watermark import commit_ingest, ingest_incremental
from tasks.support.retry import retry_on_io_error

__all__ = ["ingest_telemetry", "read_telemetry", "record_ingest"]


def read_telemetry(source: str, *, state_dir: Path | None = None, lateness_min: float = 1440) -> Telemetry:
    """What the ingest task does, without Prefect (tests call it too).

    With a ``state_dir`` the read is incremental (``policies.telemetry.watermark``); without one every
    file is read, as ``qres validate`` does.
    """
    if state_dir is None:
        return load_telemetry(source)
    return ingest_incremental(source, state_dir, lateness_min=lateness_min)


@task(name="ingest", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=retry_on_io_error)
def ingest_telemetry(source: str, *, state_dir: Path | None = None, lateness_min: float = 1440) -> Telemetry:
    """Read what is new in ``source`` (all of it without ``state_dir``) and compute the sha256 snapshot."""
    log = get_run_logger()
    telemetry = read_telemetry(source, state_dir=state_dir, lateness_min=lateness_min)
    rows = ", ".join(f"{k}={v:,}" for k, v in telemetry.rows.items())
    done = telemetry.extra.get("ingest")
    log.info(
        "read %d tables from %s (%s); snapshot %s%s",
        len(telemetry.parts),
        source,
        rows,
        snapshot_id(telemetry.sha256)[:12],
        f"; files {done}" if done else "",
    )
    if done and done.get("duplicates_dropped"):
        log.warning(
            "dropped %d exact duplicate health_checks row(s) (documented: docs/failure-modes.md)",
            done["duplicates_dropped"],
        )
    return telemetry


@task(name="record-ingest", cache_policy=NO_CACHE)
def record_ingest(telemetry: Telemetry) -> bool:
    """After validation passed: keep the snapshot, move the watermarks, prune unnamed parts (True if new)."""
    new = commit_ingest(telemetry)
    pruned = telemetry.extra.get("pruned_parts")
    if pruned:
        get_run_logger().info("pruned %d stored part(s) the committed state no longer names", pruned)
    return new
