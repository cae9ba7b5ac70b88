"""Choose where a flow's submitted tasks run: threads in the flow's process, or a Dask cluster.

Only the solves are submitted (shedding's chunks in tasks/solve.py, the families and
routing's latency pool in flows/families.py), so ``dask`` moves the solve stage to the
cluster and leaves IO steps (telemetry, MLflow, bundle store) in the flow's process.
"""

from __future__ import annotations

from prefect import Flow

from policies.errors import ConfigError

__all__ = ["RUNNERS", "with_runner"]

RUNNERS = ("threads", "dask")


def with_runner(
    flow: Flow,
    runner: str,
    address: str | None = None,
    *,
    timeout_s: float | None = None,
    cluster_kwargs: dict | None = None,
) -> Flow:
    """``flow`` with the chosen task runner; ``address`` names an existing Dask scheduler."""
    if runner not in RUNNERS:
        raise ConfigError(f"unknown runner {runner!r}; choose from {', '.join(RUNNERS)}")
    if address and runner != "dask":
        raise ConfigError("--address needs --runner dask")
    options: dict = {"timeout_seconds": timeout_s} if timeout_s else {}
    if runner == "dask":
        import dask
        from prefect_dask import DaskTaskRunner

        # A nightly beside other jobs on a busy host can starve a worker process for minutes (seen:
        # load 37 on 2 cores). Dask's defaults then drop it (connect 30 s, worker-ttl 5 min) and the
        # solve waits on an empty cluster; slow is not dead, so give both generous bounds. The wait
        # on the chunks stays bounded by ``orchestration.task_timeout_s`` (tasks/solve.py).
        dask.config.set(
            {
                "distributed.comm.timeouts.connect": "300s",
                "distributed.comm.timeouts.tcp": "300s",
                "distributed.scheduler.worker-ttl": "30 minutes",
            }
        )

        options["task_runner"] = (
            DaskTaskRunner(address=address)
            if address
            else DaskTaskRunner(
                cluster_kwargs=cluster_kwargs or {"n_workers": 2, "threads_per_worker": 1, "processes": True}
            )
        )
    return flow.with_options(**options)
