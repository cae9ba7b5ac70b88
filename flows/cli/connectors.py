"""`qres import prometheus|pagerduty|backstage` and `qres pull`: telemetry from where SRE teams keep it.

Each command takes either the connector's keys as options or ``--source NAME`` (a
``[sources.NAME]`` entry of qres.toml, validated on load); options given on the command line
override the entry's keys. Failures print one line and exit 1; nothing is written then.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from flows.cli import data as cli_data
from flows.cli.common import ConfigOpt, console, fail, out
from policies.errors import QresError

__all__ = ["register"]

OutOpt = Annotated[Path, typer.Option("--out", "-o", help="New folder to write the tables to (must not exist).")]
UrlOpt = Annotated[str | None, typer.Option("--url", help="Server URL (overrides the source entry's url).")]


def _done(rows: dict[str, int], out_dir: Path) -> None:
    console.print(
        f"wrote {', '.join(f'{k}={v:,}' for k, v in sorted(rows.items()))} to {out_dir}; "
        f"check it with `qres validate --data {out_dir}`"
    )


def import_prometheus_cmd(
    out_dir: OutOpt,
    url: UrlOpt = None,
    since: Annotated[str, typer.Option(help="Start: ISO 8601 (2026-08-11T00:00:00Z), now, or 14d (ago).")] = "14d",
    until: Annotated[str, typer.Option(help="End (exclusive), same forms.")] = "now",
    step: Annotated[int | None, typer.Option("--step", help="Query step in seconds (default 60).")] = None,
    resolution_min: Annotated[int | None, typer.Option(help="Health-check grid (worst state per bin).")] = None,
    alerts: Annotated[str | None, typer.Option(help="Incidents from these ALERTS (comma-separated).")] = None,
    source: cli_data.SourceOpt = None,
    config: ConfigOpt = None,
    overlay: cli_data.OverlayOpt = None,
) -> None:
    """Import blackbox-exporter probes (and ALERTS) from a Prometheus server's range API."""
    from policies.telemetry.importers.pull import import_prometheus
    from policies.telemetry.importers.spec import parse_time

    try:
        spec = cli_data.source_spec(
            "prometheus", config, source, url=url, step_s=step, resolution_min=resolution_min, alerts=alerts
        )
        rows = import_prometheus(spec, out_dir, parse_time(since, "--since"), parse_time(until, "--until"), overlay)
    except (QresError, FileExistsError) as exc:
        fail(exc)
    _done(rows, out_dir)


def import_pagerduty_cmd(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder to write incidents.parquet to.")],
    export: Annotated[str | None, typer.Argument(help="Saved incidents JSON (one page or a list of pages).")] = None,
    url: UrlOpt = None,
    since: Annotated[str | None, typer.Option(help="Live API: incidents since (ISO 8601 or 30d).")] = None,
    until: Annotated[str | None, typer.Option(help="Live API: incidents until.")] = None,
    source: cli_data.SourceOpt = None,
    config: ConfigOpt = None,
    replace: Annotated[bool, typer.Option(help="Replace an existing incidents table in --out.")] = False,
) -> None:
    """Import PagerDuty incidents (REST API v2 list format) from a saved export or the live API."""
    from policies.telemetry.importers.pagerduty import import_pagerduty
    from policies.telemetry.importers.spec import parse_time

    try:
        spec = cli_data.source_spec("pagerduty", config, source, url=url, export=export)
        window = tuple(None if t is None else parse_time(t, n) for t, n in ((since, "--since"), (until, "--until")))
        rows = import_pagerduty(spec, out_dir, export=spec.export or None, window=window, replace=replace)
    except (QresError, FileExistsError) as exc:
        fail(exc)
    _done(rows, out_dir)


def import_backstage_cmd(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder to write services/dependencies to.")],
    files: Annotated[list[str] | None, typer.Argument(help="catalog-info.yaml files or folders.")] = None,
    url: UrlOpt = None,
    source: cli_data.SourceOpt = None,
    config: ConfigOpt = None,
    replace: Annotated[bool, typer.Option(help="Replace existing services/dependencies tables in --out.")] = False,
) -> None:
    """Import services and dependencies from Backstage catalog files or a catalog API."""
    from policies.telemetry.importers.backstage import import_backstage

    try:
        spec = cli_data.source_spec("backstage", config, source, url=url, files=files or None)
        rows = import_backstage(spec, out_dir, files=list(spec.files), replace=replace)
    except (QresError, FileExistsError) as exc:
        fail(exc)
    _done(rows, out_dir)


def pull_cmd(
    names: Annotated[list[str] | None, typer.Argument(help="Source names (default: every [sources] entry).")] = None,
    until: Annotated[str, typer.Option(help="Pull up to (exclusive): ISO 8601, now, or 1h (ago).")] = "now",
    since: Annotated[str | None, typer.Option(help="First pull's start when the source has no watermark.")] = None,
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")] = False,
) -> None:
    """Pull each [sources] entry into its landing folder (the nightly does this first, in the same order)."""
    from flows.settings import load_settings
    from policies.telemetry.importers.land import describe_pull, pull_order, pull_source
    from policies.telemetry.importers.spec import parse_sources, parse_time

    try:
        settings = load_settings(config)
        entries = parse_sources(settings.sources)
        unknown = [n for n in names or [] if n not in entries]
        if unknown:
            raise QresError(f"no [sources.{unknown[0]}] in the config; known: {', '.join(entries) or 'none'}")
        reports = []
        for e in pull_order(entries[n] for n in (names or entries)):
            first = since or e.since
            reports.append(
                pull_source(
                    e,
                    e.into or settings.data_dir,
                    since_ms=None if first is None else parse_time(first, "since"),
                    until_ms=parse_time(until, "--until"),
                )
            )
    except QresError as exc:
        fail(exc)
    if as_json:
        out.print_json(json.dumps(reports))
    for r in reports:
        console.print(describe_pull(r), markup=False, highlight=False)


def sources_cmd(
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")] = False,
) -> None:
    """Check the [sources] entries as the nightly loads them and list them in pull order, with their last pull."""
    from flows.settings import load_settings
    from policies.telemetry.importers.land import pull_order, read_manifest
    from policies.telemetry.importers.spec import parse_sources

    try:
        settings = load_settings(config)
        entries = pull_order(parse_sources(settings.sources).values())
    except QresError as exc:
        fail(exc)
    rows = []
    for e in entries:
        landing = e.into or settings.data_dir
        state = read_manifest(Path(landing), e.name) if "://" not in landing else {}
        last = (
            f"watermark {_iso(state['until_ms'])}"
            if state.get("until_ms") is not None
            else f"{len(state['files'])} file(s) landed"
            if "files" in state
            else f"{len(state['services'])} catalog service(s)"
            if "services" in state
            else "not pulled yet"
        )
        rows.append({"source": e.name, "kind": e.kind, "into": landing, "last_pull": last})
    if as_json:
        out.print_json(json.dumps(rows))
        return
    for r in rows:
        console.print(f"{r['source']} ({r['kind']}) -> {r['into']}: {r['last_pull']}", markup=False, highlight=False)
    if not rows:
        console.print("no [sources] entries in the config (docs/telemetry-sources.md)", markup=False)


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def register(app: typer.Typer) -> None:
    cli_data.import_app.command("prometheus")(import_prometheus_cmd)
    cli_data.import_app.command("pagerduty")(import_pagerduty_cmd)
    cli_data.import_app.command("backstage")(import_backstage_cmd)
    app.command("pull")(pull_cmd)
    app.command("sources")(sources_cmd)
