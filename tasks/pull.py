"""Pull: bring every ``[sources.<name>]`` entry into its landing folder before ingest (rules: importers/land.py)."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from policies.telemetry.importers.land import describe_pull, pull_order, pull_source
from policies.telemetry.importers.spec import parse_sources, parse_time

__all__ = ["pull_sources"]


@task(name="pull", cache_policy=NO_CACHE)
def pull_sources(sources: dict[str, dict[str, Any]], data_dir: str) -> list[dict[str, object]]:
    """Each source into its landing folder (``into``, default data_dir), in :func:`pull_order`.

    A refusal (credentials, query, unreachable server, unreadable file) raises before that source
    writes anything, so the run stops before ingest and publishes nothing; watermarks stay put.
    """
    log = get_run_logger()
    reports = []
    for entry in pull_order(parse_sources(sources).values()):
        first = None if entry.since is None else parse_time(entry.since, f"sources.{entry.name}.since")
        report = pull_source(entry, entry.into or data_dir, since_ms=first)
        log.info("%s", describe_pull(report))
        reports.append(report)
    return reports
