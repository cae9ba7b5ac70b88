"""The nightly and resolve deployments, served by one long-lived process (Prefect's ``serve``).

What a ``qres run`` pays per process (importing Prefect, MLflow, Great Expectations and the
solvers, reading settings) is paid here once. Prefect's runner starts every flow run of a
served flow in a fresh *spawned* interpreter (``run_flow_in_subprocess``), which would import
all of it again; here the run is started from a *forkserver* that imported the pipeline when
the process started, so a triggered re-solve begins with everything loaded. The forkserver is
a clean single-threaded process (not a fork of this multi-threaded one), so nothing holds a
lock across the fork. The switch is the ``multiprocessing`` name inside ``prefect.flow_engine``,
which only ``run_flow_in_subprocess`` reads at run time (Prefect 3.9.1, pinned by uv.lock), and
that path is taken only for flows the runner holds in memory (``build_runner``).
tests/flows/test_served.py checks both; benchmarks/resolve_cli.py runs it against a real server.
"""

from __future__ import annotations

import multiprocessing
import os
from typing import Any

__all__ = [
    "PRELOAD",
    "INCIDENT_TRIGGER",
    "SERVED",
    "use_forkserver",
    "deployments",
    "build_runner",
    "serve_deployments",
]
__all__ += ["pause_served"]

# What every flow run imports: loaded once in the forkserver, inherited by each run.
PRELOAD = [
    "flows.nightly",
    "flows.resolve",
    "tasks.solve",
    "tasks.backtest",
    "ortools.sat.python.cp_model",
    "tasks.support.warm_tracking",  # MLflow's lazy imports and requirement map (2.6 s a run, measured)
    # Imported lazily on a run's first use: 0.09 s of every served run's main thread (py-spy).
    "prefect.flow_engine",
    "prefect.task_engine",
    "prefect.utilities.visualization",
    "anyio._backends._asyncio",
    "pyarrow.dataset",
    "dwave.samplers",
    "policies.bundle.tuf_repo",
]

# The resolve deployment's trigger, as in deployments/prefect.yaml.
INCIDENT_TRIGGER = {
    "expect": ["incident.resolved"],
    "match": {"prefect.resource.id": "qres.incident.*"},
    "parameters": {
        "incident": "{{ event.payload.incident }}",
        "dependencies": "{{ (event.payload.dependencies or []) | join(',') }}",
    },
}


class _ForkserverOnly:
    """Stands in for the ``multiprocessing`` module inside ``prefect.flow_engine``: the context it
    asks for ("spawn") is the forkserver's."""

    context = multiprocessing.context

    def get_context(self, method: str | None = None) -> Any:
        return multiprocessing.get_context("forkserver")


def use_forkserver(preload: list[str] = PRELOAD) -> None:
    """Flow runs of served flows start from a forkserver with ``preload`` imported; started now."""
    import prefect.flow_engine

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(preload)
    prefect.flow_engine.multiprocessing = _ForkserverOnly()  # only run_flow_in_subprocess reads it
    warm = ctx.Process(target=os.getpid)  # starts the forkserver (and its imports) before the first event
    warm.start()
    warm.join()


def _specs(settings) -> list[tuple[Any, dict]]:
    """(flow, deployment options) of the nightly (on its cron) and the event-triggered resolve."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig
    from prefect.events import DeploymentEventTrigger
    from prefect.schedules import Cron

    from flows.nightly import nightly
    from flows.resolve import resolve

    one_at_a_time = ConcurrencyLimitConfig(limit=1, collision_strategy="CANCEL_NEW")  # as deployments/prefect.yaml
    orch = settings.orchestration
    return [
        (
            nightly,
            {
                "name": "nightly",
                "schedule": Cron(orch.nightly_cron, timezone=orch.timezone),
                "tags": ["qres", "shedding"],
                "concurrency_limit": one_at_a_time,
            },
        ),
        (
            resolve,
            {
                "name": "resolve",
                "triggers": [DeploymentEventTrigger(enabled=True, **INCIDENT_TRIGGER)],
                "tags": ["qres", "shedding", "incident"],
                "concurrency_limit": one_at_a_time,
            },
        ),
    ]


def deployments(settings) -> list:
    """The served deployments, as RunnerDeployments (what ``serve_deployments`` registers)."""
    return [flow.to_deployment(**options) for flow, options in _specs(settings)]


def build_runner(settings, *, limit: int = 1, poll_s: float = 0.25):
    """A Prefect Runner with both flows added *in memory* (``add_flow``): Prefect's ``serve()`` of
    ``to_deployment`` objects would start each run as ``python -m prefect.engine`` instead,
    importing everything again (measured: 30 s of a triggered re-solve on a loaded machine).

    ``poll_s``: how often the runner asks the server for runs to start. Prefect's default, 10 s,
    would be most of a triggered re-solve's wait; at 1 s the wait was 0.4-1.6 s of a 3.9 s
    hand-off (measured). Four small queries a second are nothing to a server (and a SQLite one
    answering 503 while locked is retried by every client)."""
    from prefect.runner import Runner

    # pause_on_shutdown off: Prefect's own pause retries a server that is gone for over a minute
    # (measured: 74 s, then exit 1 with tracebacks); serve_deployments pauses them, bounded.
    runner = Runner(name="qres-serve-flows", query_seconds=poll_s, limit=limit, pause_on_shutdown=False)
    for flow, options in _specs(settings):
        runner.add_flow(flow, **options)
    return runner


def serve_deployments(settings, *, limit: int = 1, poll_s: float = 0.25) -> str:
    """Serve both deployments (needs PREFECT_API_URL) until SIGTERM or Ctrl-C; then pause them
    (:func:`pause_served`) and return what that did, in one line."""
    import asyncio

    use_forkserver()
    runner = build_runner(settings, limit=limit, poll_s=poll_s)
    try:
        asyncio.run(runner.start())
    except KeyboardInterrupt:
        pass
    return pause_served(os.environ["PREFECT_API_URL"])


SERVED = ("qres-nightly/nightly", "qres-resolve/resolve")


def pause_served(api_url: str, *, timeout_s: float = 5.0) -> str:
    """Pause the served deployments, as Prefect's runner does on shutdown, so that no schedule
    runs unserved and ``qres resolve`` stops handing off here (it skips a paused deployment).
    A server that does not answer is reported in one line, not retried: its deployments show
    NOT_READY a minute after this worker's last poll, which ``qres resolve`` also reads."""
    from flows.handoff import PrefectREST

    api = PrefectREST(api_url, timeout_s=timeout_s)
    try:
        for name in SERVED:
            found = api.call("GET", f"/deployments/name/{name}")
            if found:
                api.call("PATCH", f"/deployments/{found['id']}", {"paused": True})
    except OSError as exc:  # refused, reset, timed out or an HTTP error: all OSErrors
        return f"stopped; the Prefect server at {api_url} did not answer ({exc}), so the deployments were not paused"
    return f"stopped; paused {' and '.join(SERVED)}"
