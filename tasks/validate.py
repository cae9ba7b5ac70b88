"""Validate: the Great Expectations suites over every table file by file, quarantine and Data Docs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from policies.errors import DataValidationError
from policies.telemetry.ingest import Telemetry, snapshot_id
from tasks.validation.datadocs import write_data_docs
from tasks.validation.quarantine import write_quarantine
from tasks.validation.suite import ValidationReport, validate_parts

__all__ = ["validate_telemetry", "check_telemetry"]


def check_telemetry(
    telemetry: Telemetry,
    *,
    state_dir: Path | None = None,
    quarantine_max_share: float = 0.0,
    quarantine_max_share_by_table: dict | None = None,
    freshness_max_age_h: float | None = None,
    raise_on_failure: bool = True,
    references: Telemetry | None = None,
) -> tuple[ValidationReport, Path | None]:
    """Validate every part; write Data Docs and quarantine under ``<state_dir>/validation/<snapshot>``.

    The docs are written whether the data passed or not (a failed run's page is the one
    people need), then a failure raises DataValidationError when ``raise_on_failure``.
    ``references``: tables validated before that only supply ids to the reference rules.
    """
    shares = dict.fromkeys(telemetry.parts, quarantine_max_share) | dict(quarantine_max_share_by_table or {})
    parts = {n: [(p.file.uri, p.table) for p in ps] for n, ps in telemetry.parts.items()}
    try:
        refs = {n: [(p.file.uri, p.table) for p in ps] for n, ps in references.parts.items()} if references else None
        report = validate_parts(
            parts,
            raise_on_failure=False,
            quarantine_max_share=shares,
            references=refs,
            freshness_max_age_min=None if freshness_max_age_h is None else freshness_max_age_h * 60,
        )
    finally:
        parts.clear()
    report = _with_share(report, quarantine_max_share)
    docs = None
    if state_dir is not None:
        out = Path(state_dir) / "validation" / snapshot_id(telemetry.sha256)[:16]
        docs = write_data_docs(report.as_dict(), out, title=f"validation of {telemetry.source}")
        write_quarantine(report.quarantine, out / "quarantine")
    if raise_on_failure and not report.success:
        raise DataValidationError(report.violations, hint=_hint(report, docs))
    return report, docs


def _with_share(report: ValidationReport, share: float) -> ValidationReport:
    return replace(report, max_share=share)


def _hint(report: ValidationReport, docs: Path | None) -> str:
    over = [
        n
        for n, t in report.tables.items()
        if not t.success and any(r["level"] == "row" and not r["success"] for r in t.results)
    ]
    text = ""
    if over:
        text = (
            f"Rows breaking row-level rules exceed the quarantine share ({report.max_share:.2%} of a table's rows) "
            f"in {', '.join(over)}. "
        )
    text += "Fix the input files (they were not changed) and run again; the last published bundle stays LATEST."
    return text + (f"\nData Docs: {docs}" if docs else "")


@task(name="validate", cache_policy=NO_CACHE)
def validate_telemetry(
    telemetry: Telemetry,
    *,
    state_dir: Path | None = None,
    quarantine_max_share: float = 0.0,
    quarantine_max_share_by_table: dict | None = None,
    freshness_max_age_h: float | None = None,
    references: Telemetry | None = None,
) -> tuple[ValidationReport, Path | None]:
    """Fail closed: raise DataValidationError (naming file, table, column, rule, examples) on any broken rule."""
    log = get_run_logger()
    report, docs = check_telemetry(
        telemetry,
        state_dir=state_dir,
        quarantine_max_share=quarantine_max_share,
        quarantine_max_share_by_table=quarantine_max_share_by_table,
        freshness_max_age_h=freshness_max_age_h,
        references=references,
    )
    held = {n: t.num_rows for n, t in report.quarantine.items()}
    log.info(
        "validated %s rows in %d tables: every rule passed%s; Data Docs %s",
        f"{report.rows_validated:,}",
        len(report.tables),
        f" after quarantining {held}" if held else "",
        docs,
    )
    return report, docs
