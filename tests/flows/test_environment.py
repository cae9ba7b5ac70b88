"""The embedded-run context: heartbeats off only when no Prefect server is configured."""

from __future__ import annotations

from flows.environment import embedded_run


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
