"""The embedded-run context: heartbeats off only when no Prefect server is configured."""

from __future__ import annotations

from flows.environment import embedded_run
from tests.waits import WAIT_S


def test_heartbeats_are_off_on_the_embedded_api_and_back_after() -> None:
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: None}):
        before = get_current_settings().flows.heartbeat_frequency
        assert before is not None
        with embedded_run() as off:
            assert off is True and get_current_settings().flows.heartbeat_frequency is None
        assert get_current_settings().flows.heartbeat_frequency == before


def test_a_real_server_keeps_its_heartbeats() -> None:
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:4200/api"}):
        before = get_current_settings().flows.heartbeat_frequency
        with embedded_run() as off:
            assert off is False and get_current_settings().flows.heartbeat_frequency == before


def test_a_configured_api_starts_no_embedded_server(monkeypatch) -> None:
    from flows.embedded_api import start_embedded_api

    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    assert start_embedded_api() is None


def test_the_embedded_server_runs_the_flow_and_is_stopped(monkeypatch) -> None:
    """`qres run`'s early-started API: the flow's run is recorded there, heartbeats are off, the
    process is gone afterwards and PREFECT_API_URL is as before."""
    import os

    import httpx
    from prefect import flow
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    from flows.embedded_api import start_embedded_api

    @flow(name="qres-embedded-probe")
    def probe() -> int:
        return 41 + 1

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    # a server's start takes over 90 s (the default here) on a machine loaded by several suites
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(WAIT_S))
    with temporary_settings(updates={PREFECT_API_URL: None}):
        api = start_embedded_api()
        assert api is not None
        proc = api.process
        with embedded_run(api) as off:
            assert off is True and get_current_settings().flows.heartbeat_frequency is None
            assert os.environ["PREFECT_API_URL"] == api.url == get_current_settings().api.url
            state = probe(return_state=True)
            assert state.result() == 42
            run = httpx.get(f"{api.url}/flow_runs/{state.state_details.flow_run_id}").json()
            assert run["state_type"] == "COMPLETED"  # recorded on the early-started server
            # a one-shot server runs none of the background services (flows/embedded_api.py)
            served = httpx.get(f"{api.url}/admin/settings").json()["server"]
            services = served["services"]
            assert not any(services[name]["enabled"] for name in ("task_run_recorder", "event_persister", "triggers"))
            assert not any(services[name]["enabled"] for name in ("scheduler", "late_runs", "cancellation_cleanup"))
            assert not served["events"]["stream_out_enabled"]
        assert proc.poll() is not None, "the server outlived the run"
        assert "PREFECT_API_URL" not in os.environ


def test_an_explicit_setting_wins_over_the_one_shot_defaults(monkeypatch) -> None:
    """The services are off by default only: a variable in the environment reaches the server."""
    from flows import embedded_api

    seen: dict[str, str] = {}
    monkeypatch.setattr(embedded_api.EmbeddedAPI, "__init__", lambda self, env: seen.update(env))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED", "true")
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: None}):
        assert embedded_api.start_embedded_api() is not None
    assert seen["PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED"].lower() == "true"
    assert seen["PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED"] == "false"
