"""Validate: the Great Expectations suites over every table, as a Prefect step."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from policies.ingest import Telemetry
from tasks.validation import ValidationReport, validate_tables

__all__ = ["validate_telemetry"]


@task(name="validate", cache_policy=NO_CACHE)
def validate_telemetry(telemetry: Telemetry) -> ValidationReport:
    """Fail closed: raise DataValidationError (naming table, column, rule, examples) on any broken rule."""
    log = get_run_logger()
    files = {name: telemetry.origin(name) for name in telemetry.tables}
    report = validate_tables(telemetry.tables, files=files, raise_on_failure=True)
    log.info("validated %s rows in %d tables: every rule passed", f"{report.rows_validated:,}", len(report.tables))
    return report
