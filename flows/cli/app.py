"""The ``qres`` command line.

Heavy libraries (Prefect, MLflow, Great Expectations) are imported inside the commands
that need them, after the environment is configured, so ``qres --help`` is instant and
telemetry stays off.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from flows.cli import backtest as cli_backtest
from flows.cli import connectors as cli_connectors
from flows.cli import data as cli_data
from flows.cli import drill as cli_drill
from flows.cli import keys as cli_keys
from flows.cli import model as cli_model
from flows.cli import orchestrate as cli_orchestrate
from flows.cli import replay as cli_replay
from flows.cli import report as cli_report
from flows.cli import runbook as cli_runbook
from flows.cli import serve as cli_serve
from flows.cli import solve as cli_solve
from flows.cli import validate as cli_validate
from flows.cli import versions as cli_versions
from flows.cli.common import (
    EXIT_HELD,
    ConfigOpt,
    DataOpt,
    JsonOpt,
    QuietOpt,
    SeedOpt,
    StoreOpt,
    VerboseOpt,
    abs_path,
    console,
    fail,
    load_settings,
    load_store_settings,
    out,
    show_info_logs,
)
from flows.embedded_api import start_embedded_api
from flows.environment import configure_environment, embedded_run
from policies.errors import QresError
from tasks.support.preflight import check_bundle_store, check_sources, check_tracking_store

app = typer.Typer(
    name="qres",
    help="qresilience: precomputed fallback policies for when cloud and SaaS dependencies fail.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: typer's rich help shows on/off flags as taking a value ("--json <bool>"), and
    # rich's import is most of a `--help`'s start-up.
    rich_markup_mode=None,
)


@app.command()
def run(
    config: ConfigOpt = None,
    data: DataOpt = None,
    store: StoreOpt = None,
    seed: SeedOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    runner: Annotated[str, typer.Option(help="Where solve chunks run: threads (default) or dask.")] = "threads",
    address: Annotated[
        str | None,
        typer.Option(help="Dask scheduler, e.g. tcp://10.0.0.5:8786 (default with --runner dask: a local cluster)."),
    ] = None,
) -> None:
    """Run the nightly pipeline once: ingest, validate, model, solve, track, publish.

    Exit codes: 0 published, 1 failed (nothing published), 3 solved but held back by the gates.
    """
    try:
        settings = load_settings(config, data_dir=abs_path(data), store_dir=abs_path(store), seed=seed)
        check_sources(settings.sources)  # before Prefect starts (and before any folder is made): seconds
        check_tracking_store(settings.tracking_uri)
        check_bundle_store(settings.store_dir)
    except QresError as exc:
        fail(exc)
    show_info_logs(verbose)
    configure_environment(settings.state_dir)
    api = start_embedded_api()  # starts while the pipeline is imported (docs/performance.md)
    from flows.nightly import nightly
    from flows.progress import rich_progress

    try:
        with rich_progress(console.get(), enabled=not quiet and not json_out), embedded_run(api):
            from flows.runners import with_runner

            summary = with_runner(nightly, runner, address, timeout_s=settings.orchestration.flow_timeout_s)(
                data=str(settings.data_dir),
                store=str(settings.store_dir),
                seed=settings.seed,
                config=str(config) if config else None,
            )
    except QresError as exc:
        fail(exc)
    if json_out:
        out.print_json(json.dumps(summary, default=str))
    else:
        from flows.summary import render_summary

        out.print(render_summary(summary, settings))
    if not summary["published"]:
        raise typer.Exit(EXIT_HELD)


@app.command()
def decide(
    config: ConfigOpt = None,
    store: StoreOpt = None,
    down: Annotated[str, typer.Option(help="Comma-separated dependencies observed down.")] = "",
    degraded: Annotated[str, typer.Option(help="Comma-separated dependencies observed degraded.")] = "",
    policy: Annotated[str, typer.Option(help="Policy family.")] = "shedding",
    unmatched: Annotated[
        str,
        typer.Option(
            help="States no scenario names: greedy (plan the observed state), cover-then-greedy, or cover "
            "(the closest covering scenario, else all-down)."
        ),
    ] = "greedy",
    json_out: JsonOpt = False,
) -> None:
    """Answer what to do for an observed outage from the newest verified bundle."""
    settings = load_store_settings(config, store_dir=abs_path(store))
    from qres_client.client import UNMATCHED_RULES, PolicyClient

    if unmatched not in UNMATCHED_RULES:
        fail(QresError(f"--unmatched must be one of {', '.join(UNMATCHED_RULES)}; got {unmatched!r}"))

    def split(s: str) -> tuple[str, ...]:
        return tuple(x.strip() for x in s.split(",") if x.strip())

    try:
        client = PolicyClient(
            settings.store_dir,
            public_keys=cli_versions.public_key_source(settings),
            allow_unsigned=settings.bundle.allow_unsigned,
            unmatched=unmatched,
        )
        decision = client.decide(policy, down=split(down), degraded=split(degraded))
    except QresError as exc:
        fail(exc)
    # Plain text, not rich: rich's import and layout were a sixth of this command's start-up.
    if json_out:
        typer.echo(json.dumps(decision.as_dict(), indent=2, ensure_ascii=False))
        return
    rows = [("rank", "workload", "admit")] + [(str(a.rank), a.workload_id, f"{a.admit:.0%}") for a in decision.actions]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{decision.policy} {decision.version}: scenario {decision.scenario} ({decision.how})"]
    lines += ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    typer.echo("\n".join(line.rstrip() for line in lines))


@app.command()
def verify(
    config: ConfigOpt = None,
    store: StoreOpt = None,
    policy: Annotated[str, typer.Option(help="Policy family.")] = "shedding",
    version: Annotated[str | None, typer.Option(help="Version to check (default LATEST).")] = None,
) -> None:
    """Check every sha256 of a published bundle; exit 1 if anything does not match."""
    settings = load_store_settings(config, store_dir=abs_path(store))
    from qres_client.bundle import read_latest, verify_bundle

    try:
        v = version or read_latest(settings.store_dir, policy)
        if v is None:
            raise QresError(f"no {policy} bundle published in {settings.store_dir}; run `qres run` first")
        manifest = verify_bundle(settings.store_dir / policy / v)
        from qres_client.signing import load_public_keys, verify_manifest_signatures

        signed = verify_manifest_signatures(
            manifest,
            load_public_keys(cli_versions.public_key_source(settings)),
            f"{settings.store_dir / policy / v}",
            allow_unsigned=settings.bundle.allow_unsigned,
        )
    except QresError as exc:
        fail(exc)
    out.print(
        f"[green]ok[/] {policy} {v}: {len(manifest['files'])} files verified, "
        f"{'Ed25519 + ML-DSA-65 signatures verified' if signed else 'UNSIGNED (allowed by bundle.allow_unsigned)'} "
        f"(MLflow run {manifest.get('mlflow_run_id', '?')})"
    )


# Command groups kept in their own modules (flows/cli/<group>.py); each exposes
# register(app). Import the module above and add it here rather than growing this file.
_COMMAND_MODULES: tuple = (
    cli_validate,
    cli_keys,
    cli_versions,
    cli_replay,
    cli_solve,
    cli_model,
    cli_data,
    cli_connectors,
    cli_backtest,
    cli_report,
    cli_orchestrate,
    cli_serve,
    cli_drill,
    cli_runbook,
)
for _module in _COMMAND_MODULES:
    _module.register(app)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
