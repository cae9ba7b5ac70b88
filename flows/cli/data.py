"""`qres sample` (generated telemetry) and `qres import upptime|statuspage|gcp|aws|files|dataset|url`.

Each command takes the keys of its ``[sources]`` kind as the argument and options, or
``--source NAME`` (a ``[sources.NAME]`` entry of qres.toml, validated on load): options given on
the command line override the entry's keys, the others keep the entry's value or the kind's default.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer

from flows.cli.common import ConfigOpt, console, fail
from policies.errors import QresError

__all__ = ["register", "source_spec", "source_entries"]

import_app = typer.Typer(
    help="Import telemetry from where it is kept (status histories, incident tools, service catalogs, "
    "tables as they are) into a new folder; one [sources] kind each (docs/telemetry-sources.md).",
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
SourceOpt = Annotated[str | None, typer.Option("--source", help="A \\[sources.NAME] entry of qres.toml to start from.")]


def _resolution(default: int):
    help_ = f"Health-check grid in minutes, worst state per bin (default {default})."
    return Annotated[int | None, typer.Option(min=1, help=help_)]


Resolution5, Resolution60 = _resolution(5), _resolution(60)
StaleOpt = Annotated[
    float | None,
    typer.Option(
        min=0.1, help="A never-resolved incident with no update for this long before the end is closed (h, default 72)."
    ),
]


def source_entries(config: Path | None) -> dict[str, Any]:
    """The validated ``[sources]`` of the config file (ConfigError says which key to fix)."""
    from flows.settings import load_settings
    from policies.telemetry.importers.spec import parse_sources

    return parse_sources(load_settings(config).sources)


def source_spec(kind: str, config: Path | None, source: str | None, **cli: Any) -> Any:
    """The source entry's keys overlaid with the options that were given, validated as in qres.toml."""
    from policies.telemetry.importers.spec import KINDS, build_spec

    base: dict[str, Any] = {}
    if source:
        entries = source_entries(config)
        if source not in entries:
            raise QresError(f"no [sources.{source}] in the config; known: {', '.join(entries) or 'none'}")
        if entries[source].kind != kind:
            raise QresError(
                f"[sources.{source}] is kind {entries[source].kind!r}; use `qres import {entries[source].kind}`"
                if entries[source].kind in KINDS
                else f"[sources.{source}] is kind {entries[source].kind!r}, not {kind!r}"
            )
        base = {f.name: getattr(entries[source].spec, f.name) for f in dataclasses.fields(entries[source].spec)}
    values = base | {k: v for k, v in cli.items() if v is not None}
    fields = dataclasses.fields(_kind_class(kind)) if kind in KINDS else ()
    needed = [f.name for f in fields if f.default is f.default_factory is dataclasses.MISSING and f.name not in values]
    if needed and not source:
        raise QresError(
            f"qres import {kind}: {needed[0]} is missing; give it on the command line (see --help), or --source "
            f"NAME for a [sources.NAME] entry of kind {kind!r} in qres.toml"
        )
    return build_spec(kind, values, source or f"qres import {kind}")


def _kind_class(kind: str) -> type:
    from policies.telemetry.importers.spec import spec_class

    return spec_class(kind)


@import_app.command("upptime")
def import_upptime_cmd(
    out_dir: OutOpt,
    path: Annotated[str | None, typer.Argument(help="Upptime git folder, .bundle file or commits.jsonl.")] = None,
    overlay: OverlayOpt = None,
    resolution_min: Resolution5 = None,
    keep_template_sites: Annotated[
        bool | None, typer.Option(help="Keep the Upptime template's placeholder sites (Google, Wikipedia, ...).")
    ] = None,
    stale_after_h: Annotated[
        float | None,
        typer.Option(min=0.1, help="A site not checked for this long has stopped existing (hours, default 72)."),
    ] = None,
    retired_after_h: Annotated[
        float | None,
        typer.Option(
            min=0.1, help="A down run longer than this that never ends: probably retired (hours, default 168)."
        ),
    ] = None,
    source: SourceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Import an Upptime status repository's whole history (see docs/importers.md for its rules)."""
    from policies.telemetry.importers.upptime import import_upptime

    def run():
        spec = source_spec(
            "upptime", config, source, path=path, resolution_min=resolution_min,
            keep_template_sites=keep_template_sites, stale_after_h=stale_after_h, retired_after_h=retired_after_h,
        )  # fmt: skip
        keys = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec) if f.name != "path"}
        return import_upptime(spec.path, out_dir, overlay=overlay, **keys)

    _report(run, out_dir)


def _history_cmd(kind: str, what: str, doc: str):
    """`qres import statuspage|gcp|aws`: one export (file or URL) of incidents into a new folder."""

    def command(
        out_dir: OutOpt,
        path: str | None = None,  # typed below: its help names the kind's file
        overlay: OverlayOpt = None,
        resolution_min: Resolution60 = None,
        stale_open_h: StaleOpt = None,
        source: SourceOpt = None,
        config: ConfigOpt = None,
    ) -> None:
        from policies.telemetry.importers import cloud, statuspage

        importer = {"statuspage": statuspage.import_statuspage, "gcp": cloud.import_gcp, "aws": cloud.import_aws}[kind]

        def run():
            spec = source_spec(
                kind, config, source, path=path, resolution_min=resolution_min, stale_open_h=stale_open_h
            )
            return importer(
                spec.path, out_dir, resolution_min=spec.resolution_min, overlay=overlay, stale_open_h=spec.stale_open_h
            )

        _report(run, out_dir)

    command.__doc__ = doc
    command.__annotations__["path"] = Annotated[str | None, typer.Argument(help=what)]
    import_app.command(kind)(command)


_history_cmd(
    "statuspage",
    "Incidents export: JSON or JSON lines (.gz ok), file or URL.",
    "Import a saved Atlassian Statuspage incidents export (components become services).",
)
_history_cmd(
    "gcp",
    "Google Cloud status incidents.json (file or URL).",
    "Import the Google Cloud status incident history (products become services).",
)
_history_cmd(
    "aws",
    "AWS Health Dashboard historyevents.json (file or URL).",
    "Import the AWS Health Dashboard event history (services per region become services).",
)


def _tables_cmd(kind: str, key: str, what: str, doc: str):
    """`qres import files|dataset|url`: the tables as they are, copied into a new folder."""

    def command(
        out_dir: OutOpt,
        location: str | None = None,  # typed below: its name and help depend on the kind
        source: SourceOpt = None,
        config: ConfigOpt = None,
    ) -> None:
        from policies.telemetry.importers.spec import SourceEntry
        from policies.telemetry.importers.tables import copy_tables

        def run():
            spec = source_spec(kind, config, source, **{key: location})
            return {f"{t} files": n for t, n in copy_tables(SourceEntry(source or kind, kind, spec), out_dir).items()}

        _report(run, out_dir)

    command.__doc__ = doc
    command.__annotations__["location"] = Annotated[str | None, typer.Argument(metavar=key.upper(), help=what)]
    import_app.command(kind)(command)


_tables_cmd(
    "files",
    "path",
    "Local folder or glob of the tables (services.csv, health_checks/, ...).",
    "Copy a local folder of telemetry tables (CSV or Parquet) into a new folder.",
)
_tables_cmd(
    "dataset",
    "path",
    "Root of a Hive-partitioned dataset (health_checks/date=.../), local or an fsspec URL (s3://...).",
    "Copy a partitioned dataset's tables (Hive key=value folders kept) into a new folder.",
)
_tables_cmd(
    "url",
    "url",
    "HTTP(S) folder of the tables (a listing server) or an archive of them (.zip, .tar.gz).",
    "Fetch telemetry tables from an HTTP(S) folder or archive into a new folder.",
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
