"""`qres serve-flows`: the served deployments match deployments/prefect.yaml, and a served run
starts from the warm forkserver (the pipeline already imported), not a fresh interpreter."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from prefect import flow

from flows.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
MARKER = "colorsys"  # preloaded here instead of the pipeline (flows.served.PRELOAD): same mechanism, cheap


@flow(name="qres-served-probe")
def probe() -> None:
    """Fails unless the run's process had the forkserver's preload (a module nothing else imports)."""
    if MARKER not in sys.modules:
        raise RuntimeError("the run's process did not come from the warm forkserver")


def test_served_deployments_match_the_yaml(tmp_path: Path) -> None:
    from flows.served import deployments

    spec = {d["name"]: d for d in yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())["deployments"]}
    settings = load_settings(None, state_dir=tmp_path)
    served = {d.name: d for d in deployments(settings)}
    assert set(served) == set(spec) == {"nightly", "resolve"}
    for name, d in served.items():
        assert f"{d.entrypoint}".endswith(spec[name]["entrypoint"].split("/")[-1]), (
            d.entrypoint,
            spec[name]["entrypoint"],
        )
        assert d.concurrency_limit == spec[name]["concurrency_limit"]["limit"]
        assert d.concurrency_options.collision_strategy.value == spec[name]["concurrency_limit"]["collision_strategy"]
    (trigger,) = served["resolve"].triggers
    (want,) = spec["resolve"]["triggers"]
    assert set(trigger.expect) == set(want["expect"])
    assert trigger.match.model_dump() == want["match"]
    assert trigger.parameters == want["parameters"]
    cron = served["nightly"].schedules[0].schedule
    assert (cron.cron, cron.timezone) == (
        spec["nightly"]["schedules"][0]["cron"],
        spec["nightly"]["schedules"][0]["timezone"],
    )


def test_a_served_run_starts_from_the_warm_forkserver(prefect_harness, monkeypatch) -> None:
    import prefect.flow_engine
    from prefect.client.orchestration import get_client

    from flows.served import use_forkserver

    monkeypatch.setattr(prefect.flow_engine, "multiprocessing", prefect.flow_engine.multiprocessing)  # undone after
    use_forkserver([MARKER])
    with get_client(sync_client=True) as client:
        run = client.create_flow_run(probe)
    proc = prefect.flow_engine.run_flow_in_subprocess(probe, flow_run=run)  # what the served runner calls
    proc.join(timeout=600)
    assert type(proc).__name__ == "ForkServerProcess"
    assert proc.exitcode == 0
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(run.id).state.is_completed()


def test_the_runner_holds_both_flows_in_memory(prefect_harness, tmp_path: Path) -> None:
    """Runs of a deployment the runner holds in memory start through run_flow_in_subprocess (the
    forkserver); any other starts `python -m prefect.engine`, a fresh interpreter (Prefect's
    Runner picks by this registry)."""
    from flows.served import build_runner

    runner = build_runner(load_settings(None, state_dir=tmp_path))
    registry = runner._deployment_registry  # private: what the runner reads to choose the starter
    ids = registry.get_deployment_ids()
    assert {registry.get_deployment_name(i) for i in ids} == {"nightly", "resolve"}
    assert {registry.get_flow(i).name for i in ids} == {"qres-nightly", "qres-resolve"}


def test_a_stopping_worker_pauses_its_deployments_and_a_gone_server_is_one_line(prefect_harness, tmp_path) -> None:
    """What `qres serve-flows` does on SIGTERM: pause both deployments (so `qres resolve` stops
    handing off to it); a server that is gone is reported, not retried for a minute."""
    import socket

    from prefect.client.orchestration import get_client
    from prefect.settings import get_current_settings

    from flows.served import SERVED, build_runner, pause_served

    build_runner(load_settings(None, state_dir=tmp_path))  # registers both deployments
    with get_client(sync_client=True) as client:
        assert not any(client.read_deployment_by_name(name).paused for name in SERVED)
        assert pause_served(get_current_settings().api.url) == f"stopped; paused {' and '.join(SERVED)}"
        try:
            assert all(client.read_deployment_by_name(name).paused for name in SERVED)
        finally:
            build_runner(load_settings(None, state_dir=tmp_path))  # a worker started again serves them
        assert not any(client.read_deployment_by_name(name).paused for name in SERVED)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        gone = f"http://127.0.0.1:{s.getsockname()[1]}/api"  # bound, not listening: refused
        line = pause_served(gone)
    assert line.startswith(f"stopped; the Prefect server at {gone} did not answer") and "not paused" in line
