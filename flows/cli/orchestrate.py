"""``qres resolve`` and ``qres notify-incident``: the re-solve path after an incident.

``resolve`` hands the re-solve to a warm ``qres serve-flows`` worker when one serves the
``qres-resolve/resolve`` deployment on PREFECT_API_URL (flows/handoff.py: nothing of Prefect or
the pipeline is imported then), and otherwise runs the flow in this process (Prefect's temporary
API, or the server named by PREFECT_API_URL). ``notify-incident`` only sends the
``incident.resolved`` event; on a Prefect server the ``resolve`` deployment's trigger
(deployments/prefect.yaml) turns it into a flow run on a worker.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

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
    out,
    show_info_logs,
)
from flows.embedded_api import start_embedded_api
from flows.environment import configure_environment, embedded_run
from policies.errors import QresError

__all__ = ["register", "INCIDENT_EVENT"]

INCIDENT_EVENT = "incident.resolved"

IncidentOpt = Annotated[str | None, typer.Option("--incident", help="Incident id from the incidents table.")]
SinceOpt = Annotated[
    str | None,
    typer.Option("--since", help="ISO time (UTC if no zone): every incident started or resolved since then."),
]
DepsOpt = Annotated[
    str | None,
    typer.Option(
        "--dependencies", help="Comma-separated dependencies in scope (default: the incidents' affected services)."
    ),
]


def resolve(
    incident: IncidentOpt = None,
    since: SinceOpt = None,
    dependencies: DepsOpt = None,
    config: ConfigOpt = None,
    data: DataOpt = None,
    store: StoreOpt = None,
    seed: SeedOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    force: Annotated[
        bool, typer.Option("--force", help="Publish new versions even where the decisions equal LATEST's.")
    ] = False,
    served: Annotated[
        bool | None,
        typer.Option(
            "--served/--in-process",
            help="Hand the re-solve to the warm worker of `qres serve-flows`, or run it in this process "
            "(default: the worker when one serves qres-resolve/resolve on PREFECT_API_URL).",
        ),
    ] = None,
) -> None:
    """Re-fit with the newest telemetry, re-solve what an incident touched, publish through the gates.

    Name exactly one of --incident ID or --since TIME. A family whose decisions come out equal to
    its LATEST publishes nothing (--force publishes anyway). The last line says where it ran. Exit codes: 0 published or unchanged, 1 failed (nothing published), 3 solved but held back by the gates.
    """
    if (incident is None) == (since is None):
        fail(QresError("name exactly one of --incident ID or --since TIME"))
    try:
        settings = load_settings(config, data_dir=abs_path(data), store_dir=abs_path(store), seed=seed)
    except QresError as exc:
        fail(exc)
    params = _flow_params(settings, config, incident=incident, since=since, dependencies=dependencies, force=force)
    worker = _served_worker(served)
    if worker is not None:
        summary, where = _handed_off(*worker, params, settings, quiet=quiet or json_out)
    else:
        summary, where = _in_process(params, settings, verbose=verbose, quiet=quiet or json_out), "in this process"
    if json_out:
        out.print_json(json.dumps({**summary, "ran": where}, default=str))
    else:
        from flows.summary import render_summary

        out.print(render_summary(summary, settings))
        out.print(
            f"re-solved after {', '.join(summary['incidents'])} (scope: {', '.join(summary['scope'])}) {where}: "
            f"{summary['scenarios_solved']} of {summary['scenarios']} scenarios solved, the rest reused"
        )
    if not summary["published"] and not summary.get("unchanged"):
        raise typer.Exit(EXIT_HELD)


def _flow_params(settings, config, *, incident, since, dependencies, force) -> dict:
    """The resolve flow's parameters, as this command's settings name them (paths absolute)."""
    deps = [d.strip() for d in (dependencies or "").split(",") if d.strip()] or None
    return {
        "incident": incident,
        "since": since,
        "dependencies": deps,
        "data": str(settings.data_dir),
        "store": str(settings.store_dir),
        "seed": settings.seed,
        "config": _config_file(config),
        "force": force,
    }


def _config_file(config) -> str | None:
    """The config file these settings came from, absolute, so a worker elsewhere reads the same one."""
    import os
    from pathlib import Path

    from flows.settings import CONFIG_FILE_NAME

    path = (
        config or os.environ.get("QRES_CONFIG") or (Path(CONFIG_FILE_NAME) if Path(CONFIG_FILE_NAME).exists() else None)
    )
    return str(Path(path).absolute()) if path else None


def _served_worker(served: bool | None):
    """(API, deployment) of the warm worker to hand the re-solve to; None to run in this process."""
    if served is False:
        return None
    from flows.handoff import DEPLOYMENT, PrefectREST, api_url, served_deployment

    url = api_url()
    api = PrefectREST(url) if url else None
    deployment = served_deployment(api) if api else None
    if deployment is None and served:
        where = f"on {url}" if url else "(PREFECT_API_URL is not set)"
        fail(QresError(f"--served: no worker serves {DEPLOYMENT} {where}; start `qres serve-flows` or drop --served"))
    return (api, deployment) if deployment else None


def _in_process(params: dict, settings, *, verbose: bool, quiet: bool) -> dict:
    """The re-solve flow run here, with Prefect's temporary API unless PREFECT_API_URL is set."""
    show_info_logs(verbose)
    configure_environment(settings.state_dir)
    api = start_embedded_api()  # starts while the pipeline is imported (docs/performance.md)
    from flows.progress import rich_progress
    from flows.resolve import resolve as resolve_flow

    try:
        with rich_progress(console.get(), enabled=not quiet), embedded_run(api):
            return resolve_flow.with_options(timeout_seconds=settings.orchestration.flow_timeout_s)(**params)
    except QresError as exc:
        fail(exc)


def _handed_off(api, deployment: dict, params: dict, settings, *, quiet: bool) -> tuple[dict, str]:
    """The re-solve as a run of the served deployment: its summary, read back from the run's artifact."""
    from flows.handoff import DEPLOYMENT, hand_off
    from policies.errors import NothingToLearnError

    def created(run: dict) -> None:
        if not quiet:
            console.print(f"handed to the served worker: {DEPLOYMENT}, flow run {run['name']} ({run['id']})")

    try:
        done = hand_off(
            api, deployment, params, timeout_s=settings.orchestration.flow_timeout_s + 600, on_created=created
        )
    except (OSError, TimeoutError) as exc:
        fail(QresError(f"the served re-solve: {exc}"))
    result = done.result or {}
    if "error" in result:
        fail((NothingToLearnError if result["refused"] else QresError)(result["error"]))
    if done.state != "COMPLETED" or "published" not in result:
        fail(QresError(f"the served re-solve (flow run {done.flow_run['name']}) ended {done.state}: {done.message}"))
    return result, f"on the served worker (flow run {done.flow_run['name']})"


def notify_incident(
    incident_id: Annotated[str, typer.Argument(metavar="INCIDENT_ID", help="The resolved incident's id.")],
    dependencies: DepsOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Send an incident.resolved event; the resolve deployment's trigger starts a re-solve.

    Needs a Prefect server (PREFECT_API_URL); with the ephemeral API nothing listens.
    """
    settings = load_settings(config)
    configure_environment(settings.state_dir)
    from prefect.events import emit_event
    from prefect.events.worker import EventsWorker

    deps = [d.strip() for d in (dependencies or "").split(",") if d.strip()]
    event = emit_event(
        event=INCIDENT_EVENT,
        resource={"prefect.resource.id": f"qres.incident.{incident_id}"},
        payload={"incident": incident_id, "dependencies": deps},
    )
    EventsWorker.drain_all()  # a short-lived process: send before exiting
    if event is None:
        fail(QresError("the event was not sent: is PREFECT_API_URL set to a Prefect server?"))
    console.print(f"sent {INCIDENT_EVENT} for {incident_id} (event {event.id})")


def serve_flows(
    config: ConfigOpt = None,
    limit: Annotated[int, typer.Option(help="Flow runs at a time in this process.")] = 1,
    poll_s: Annotated[
        float, typer.Option("--poll-s", help="Seconds between the runner's queries for runs to start.")
    ] = 0.25,
) -> None:
    """Serve the nightly and resolve deployments from this long-lived process (no worker needed).

    Imports and settings are paid once: every run starts from a process that has the pipeline
    loaded, so an incident.resolved event re-solves in seconds. Needs PREFECT_API_URL.
    """
    import os

    if not os.environ.get("PREFECT_API_URL"):
        fail(QresError("serve-flows registers deployments on a Prefect server: set PREFECT_API_URL"))
    settings = load_settings(config)
    configure_environment(settings.state_dir, settings.bundle.key_dir)
    if config is not None:
        os.environ["QRES_CONFIG"] = str(abs_path(config))  # the flow runs read the same settings
    from flows.served import serve_deployments

    console.print("serving qres-nightly/nightly and qres-resolve/resolve; Ctrl-C or SIGTERM stops")
    console.print(serve_deployments(settings, limit=limit, poll_s=poll_s))


def register(app: typer.Typer) -> None:
    app.command("resolve")(resolve)
    app.command("notify-incident")(notify_incident)
    app.command("serve-flows")(serve_flows)
