"""``qres resolve`` and ``qres notify-incident``: the re-solve path after an incident.

``resolve`` runs the re-solve flow in this process (Prefect's ephemeral API, or the
server named by PREFECT_API_URL). ``notify-incident`` only sends the
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
) -> None:
    """Re-fit with the newest telemetry, re-solve what an incident touched, publish through the gates.

    Name exactly one of --incident ID or --since TIME. A family whose decisions come out equal to
    its LATEST publishes nothing (--force publishes anyway). Exit codes: 0 published or unchanged, 1 failed (nothing published), 3 solved but held back by the gates.
    """
    if (incident is None) == (since is None):
        fail(QresError("name exactly one of --incident ID or --since TIME"))
    try:
        settings = load_settings(config, data_dir=abs_path(data), store_dir=abs_path(store), seed=seed)
    except QresError as exc:
        fail(exc)
    show_info_logs(verbose)
    configure_environment(settings.state_dir)
    api = start_embedded_api()  # starts while the pipeline is imported (docs/performance.md)
    from flows.progress import rich_progress
    from flows.resolve import resolve as resolve_flow

    deps = [d.strip() for d in (dependencies or "").split(",") if d.strip()] or None
    try:
        with rich_progress(console.get(), enabled=not quiet and not json_out), embedded_run(api):
            summary = resolve_flow.with_options(timeout_seconds=settings.orchestration.flow_timeout_s)(
                incident=incident,
                since=since,
                dependencies=deps,
                data=str(settings.data_dir),
                store=str(settings.store_dir),
                seed=settings.seed,
                config=str(config) if config else None,
                force=force,
            )
    except QresError as exc:
        fail(exc)
    if json_out:
        out.print_json(json.dumps(summary, default=str))
    else:
        from flows.summary import render_summary

        out.print(render_summary(summary, settings))
        out.print(
            f"re-solved after {', '.join(summary['incidents'])} (scope: {', '.join(summary['scope'])}): "
            f"{summary['scenarios_solved']} of {summary['scenarios']} scenarios solved, the rest reused"
        )
    if not summary["published"] and not summary.get("unchanged"):
        raise typer.Exit(EXIT_HELD)


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
    ] = 1.0,
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

    console.print("serving qres-nightly/nightly and qres-resolve/resolve; Ctrl-C stops")
    serve_deployments(settings, limit=limit, poll_s=poll_s)


def register(app: typer.Typer) -> None:
    app.command("resolve")(resolve)
    app.command("notify-incident")(notify_incident)
    app.command("serve-flows")(serve_flows)
