"""`qres sample` and `qres import ...`: telemetry to run the pipeline on, generated or imported."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import console, fail
from policies.errors import QresError

__all__ = ["register"]

import_app = typer.Typer(
    help="Import status histories (Upptime repositories, Statuspage exports, Google Cloud and AWS incident "
    "histories) as telemetry tables; rules in docs/importers.md.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

OutOpt = Annotated[Path, typer.Option("--out", "-o", help="New folder to write the tables to (must not exist).")]
OverlayOpt = Annotated[
    str | None,
    typer.Option(
        "--overlay", help="Folder with your own services/dependencies/workloads/sites to use instead of the defaults."
    ),
]


@import_app.command("upptime")
def import_upptime_cmd(
    path: Annotated[str, typer.Argument(help="Upptime git folder, .bundle file or commits.jsonl.")],
    out_dir: OutOpt,
    overlay: OverlayOpt = None,
    resolution_min: Annotated[int, typer.Option(min=1, help="Health-check grid (worst state per bin).")] = 5,
    keep_template_sites: Annotated[
        bool, typer.Option(help="Keep the Upptime template's placeholder sites (Google, Wikipedia, ...).")
    ] = False,
    stale_after_h: Annotated[
        float, typer.Option(min=0.1, help="A site not checked for this long has stopped existing (hours).")
    ] = 72.0,
    retired_after_h: Annotated[
        float,
        typer.Option(min=0.1, help="A down run longer than this that never ends: probably retired (hours)."),
    ] = 168.0,
) -> None:
    """Import an Upptime status repository's whole history (see docs/importers.md for its rules)."""
    from policies.telemetry.importers.upptime import import_upptime

    _report(
        lambda: import_upptime(
            path,
            out_dir,
            resolution_min=resolution_min,
            overlay=overlay,
            keep_template_sites=keep_template_sites,
            stale_after_h=stale_after_h,
            retired_after_h=retired_after_h,
        ),
        out_dir,
    )


StaleOpt = Annotated[
    float,
    typer.Option(min=0.1, help="A never-resolved incident with no update for this long before the end is closed."),
]


@import_app.command("statuspage")
def import_statuspage_cmd(
    source: Annotated[str, typer.Argument(help="Incidents export: JSON or JSON lines (.gz ok), file or URL.")],
    out_dir: OutOpt,
    overlay: OverlayOpt = None,
    resolution_min: Annotated[int, typer.Option(min=1, help="Health-check grid (worst state per bin).")] = 60,
    stale_open_h: StaleOpt = 72.0,
) -> None:
    """Import a saved Atlassian Statuspage incidents export (components become services)."""
    from policies.telemetry.importers.statuspage import import_statuspage

    _report(
        lambda: import_statuspage(
            source, out_dir, resolution_min=resolution_min, overlay=overlay, stale_open_h=stale_open_h
        ),
        out_dir,
    )


@import_app.command("gcp")
def import_gcp_cmd(
    source: Annotated[str, typer.Argument(help="Google Cloud status incidents.json (file or URL).")],
    out_dir: OutOpt,
    overlay: OverlayOpt = None,
    resolution_min: Annotated[int, typer.Option(min=1, help="Health-check grid (worst state per bin).")] = 60,
    stale_open_h: StaleOpt = 72.0,
) -> None:
    """Import the Google Cloud status incident history (products become services)."""
    from policies.telemetry.importers.cloud import import_gcp

    _report(
        lambda: import_gcp(source, out_dir, resolution_min=resolution_min, overlay=overlay, stale_open_h=stale_open_h),
        out_dir,
    )


@import_app.command("aws")
def import_aws_cmd(
    source: Annotated[str, typer.Argument(help="AWS Health Dashboard historyevents.json (file or URL).")],
    out_dir: OutOpt,
    overlay: OverlayOpt = None,
    resolution_min: Annotated[int, typer.Option(min=1, help="Health-check grid (worst state per bin).")] = 60,
    stale_open_h: StaleOpt = 72.0,
) -> None:
    """Import the AWS Health Dashboard event history (services per region become services)."""
    from policies.telemetry.importers.cloud import import_aws

    _report(
        lambda: import_aws(source, out_dir, resolution_min=resolution_min, overlay=overlay, stale_open_h=stale_open_h),
        out_dir,
    )


def _report(run, out_dir: Path) -> None:
    try:
        result = run()
    except (QresError, FileExistsError) as exc:
        fail(exc)
    rows = getattr(result, "rows", result)
    if hasattr(result, "text"):
        console.print(result.text(), markup=False, highlight=False)
    console.print(
        f"wrote {', '.join(f'{k}={v:,}' for k, v in sorted(rows.items()))} to {out_dir}; "
        f"check it with `qres validate --data {out_dir}`",
        markup=False,
        highlight=False,
    )


def sample(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder to create the sample tables in.")],
    seed: Annotated[int, typer.Option(help="Random seed: same arguments, same bytes.")] = 7,
    days: Annotated[int, typer.Option(min=1, help="Days of 1-minute health checks.")] = 30,
    services: Annotated[int, typer.Option(min=40, help="Services in the fleet (40 is the classic sample).")] = 40,
    workloads: Annotated[
        int | None, typer.Option(min=1, help="Workloads on the internal services [default: 1.5 per service].")
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(help="First day (UTC, YYYY-MM-DD) [default: 2026-10-01, or a span ending 2026-10-31]."),
    ] = None,
) -> None:
    """Write deterministic, realistic sample telemetry (one Parquet file or day folder per table)."""
    from datetime import UTC, datetime, timedelta

    from policies.telemetry.sample import write_sample
    from policies.telemetry.sample.build import default_start

    first = start or default_start(days)
    try:
        end = datetime.fromisoformat(first).replace(tzinfo=UTC) + timedelta(days=days)
    except ValueError as exc:
        fail(QresError(f"--start must be a date such as 2026-10-01: {exc}"))
    if end > datetime.now(UTC):  # validation refuses rows from the future
        fail(QresError(f"the sample would end on {end:%Y-%m-%d}, in the future: choose an earlier --start"))
    try:
        written = write_sample(out_dir, seed, days=days, start=first, services=services, workloads=workloads)
    except (QresError, FileExistsError, ValueError) as exc:
        fail(exc)
    files = sum(len(v) for v in written.values())
    console.print(
        f"wrote {len(written)} tables ({files} files, {services} services, {days} days from {first}) "
        f"to {out_dir} with seed {seed}",
        markup=False,
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command()(sample)
    app.add_typer(import_app, name="import")
