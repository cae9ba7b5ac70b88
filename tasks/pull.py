"""Pull: bring each configured pull source (``[sources.<name>]`` of kind prometheus) up to now before ingest."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from policies.telemetry.importers.pull import pull_into
from policies.telemetry.importers.spec import parse_sources, parse_time

__all__ = ["pull_sources"]


@task(name="pull", cache_policy=NO_CACHE)
def pull_sources(sources: dict[str, dict[str, Any]], data_dir: str) -> list[dict[str, object]]:
    """Each Prometheus source from its watermark to now into its landing folder (``into``, default data_dir).

    A refusal (credentials, query, unreachable server) raises before anything is written, so the run
    stops before ingest and publishes nothing; the watermark stays where it was.
    """
    log = get_run_logger()
    reports = []
    for name, entry in parse_sources(sources).items():
        if entry.kind != "prometheus":
            continue  # incidents and catalog sources are imported on demand (`qres import ...`)
        first = None if entry.since is None else parse_time(entry.since, f"sources.{name}.since")
        report = pull_into(entry.spec, entry.into or data_dir, name, since_ms=first)
        log.info(
            "pulled %s: %s health checks, %s incidents in %s requests",
            name,
            f"{report['health_checks']:,}",
            report["incidents"],
            report["requests"],
        )
        reports.append(report)
    return reports
