"""`qres validate`: check telemetry against the schemas and suites without running the pipeline."""

from __future__ import annotations

import json

import typer

from flows.cli.common import EXIT_FAILED, ConfigOpt, DataOpt, JsonOpt, abs_path, console, fail, load_settings, out
from flows.environment import configure_environment
from policies.errors import QresError

__all__ = ["register"]


def validate(config: ConfigOpt = None, data: DataOpt = None, json_out: JsonOpt = False) -> None:
    """Check a telemetry folder against the schemas and Great Expectations suites; exit 1 on failure."""
    settings = load_settings(config, data_dir=abs_path(data))
    configure_environment(settings.state_dir)
    from policies.telemetry.ingest import load_telemetry
    from tasks.validate import check_telemetry

    try:
        telemetry = load_telemetry(settings.data_dir)
        report, docs = check_telemetry(
            telemetry,
            state_dir=settings.state_dir,
            quarantine_max_share=settings.ingest.quarantine_max_share,
            quarantine_max_share_by_table=settings.ingest.quarantine_max_share_by_table,
            freshness_max_age_h=settings.ingest.freshness_max_age_h,
            raise_on_failure=False,
        )
        console.print(f"Data Docs: {docs}", highlight=False)
        warnings = _warnings(telemetry, settings)
    except QresError as exc:
        fail(exc)
    for w in warnings:
        console.print(f"[yellow]warning:[/] {w['service_id'] or 'history'}: {w['message']}", highlight=False)
    if json_out:
        out.print_json(json.dumps(report.as_dict() | {"warnings": warnings}, default=str))
    else:
        from rich.table import Table

        table = Table(title=f"validation of {settings.data_dir}")
        for col in ("table", "rule", "column", "result", "unexpected", "examples"):
            table.add_column(col)
        for name, tr in report.tables.items():
            for r in tr.results:
                table.add_row(
                    name,
                    str(r.get("rule")),
                    str(r.get("column") or ""),
                    "[green]pass[/]"
                    if r.get("success")
                    else "[yellow]quarantined[/]"
                    if r.get("quarantined")
                    else "[red]FAIL[/]",
                    str(r.get("unexpected_count") or 0),
                    ", ".join(map(str, r.get("examples") or []))[:60],
                )
        out.print(table)
        out.print(
            f"{report.rows_validated:,} rows in {len(report.tables)} tables: "
            + ("[green]all rules passed[/]" if report.success else f"[red]{len(report.violations)} rule(s) broken[/]")
        )
    if not report.success:
        for v in report.violations:
            console.print(f"[red]-[/] {v}", highlight=False)
        raise typer.Exit(EXIT_FAILED)


def _warnings(telemetry, settings) -> list[dict]:
    from flows.stages import history_warnings_of

    return history_warnings_of(telemetry.tables.get("health_checks"), settings)


def register(app: typer.Typer) -> None:
    app.command()(validate)
