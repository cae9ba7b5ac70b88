"""Prefect's temporary API server for one ``qres run`` / ``qres resolve``, started early.

Why not Prefect's own: when no API URL is configured, Prefect starts its temporary server
(``SubprocessASGIServer``) on the first API call, i.e. after this process has imported
MLflow, Great Expectations and the solvers, and it first imports the whole server
(FastAPI, SQLAlchemy, every server schema) into *this* process only to reach that class.
Profiled here (py-spy on the server, ``-X importtime`` on the client), both halves are
imports and pydantic schema building, not work: so this module starts the same server
command (``uvicorn ... prefect.server.api.server:create_app``, same ephemeral flags and
the same database under ``PREFECT_HOME``) as soon as Prefect's settings are read, lets it
start while this process imports the pipeline, and points the run at it.

A configured API (``PREFECT_API_URL``, a profile, prefect.toml) is always used as it is:
then nothing is started here.

The temporary server lives for one command, so it runs none of the server's background
services (``ONE_SHOT_SERVICES_OFF``): they persist and stream events, record task runs from
them, evaluate automations, schedule deployments and sweep late, paused or cancelled runs,
and a one-shot run reads none of that back (it orchestrates its flow and task runs itself;
its flow runs are still recorded). Measured in docs/performance.md. A variable set in the
environment wins over these defaults.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import time

from policies.errors import QresError

__all__ = ["EmbeddedAPI", "start_embedded_api", "ONE_SHOT_SERVICES_OFF"]

# Prefect 3.9's server settings; tests/flows/test_environment.py reads them back from the server.
ONE_SHOT_SERVICES_OFF = {
    f"PREFECT_SERVER_SERVICES_{name}_ENABLED": "false"
    for name in (
        "TASK_RUN_RECORDER",
        "EVENT_PERSISTER",
        "EVENT_LOGGER",
        "TRIGGERS",  # and its actions
        "SCHEDULER",
        "LATE_RUNS",
        "PAUSE_EXPIRATIONS",
        "CANCELLATION_CLEANUP",
        "REPOSSESSOR",
        "FOREMAN",
        "CLEANUP_RECONCILER",
    )
} | {"PREFECT_SERVER_EVENTS_STREAM_OUT_ENABLED": "false", "PREFECT_SERVER_LOGS_STREAM_OUT_ENABLED": "false"}

_PORT_IN_USE = 3  # uvicorn's exit code when the port was taken between our check and its bind


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedAPI:
    """One Prefect API server process on loopback, owned (and stopped) by this process."""

    def __init__(self, env: dict[str, str]) -> None:
        self._env = env
        self.process: subprocess.Popen | None = None
        self.port = 0
        self._launch()
        atexit.register(self.stop)  # registered before Prefect's log/event workers: stopped after they drain

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def _launch(self) -> None:
        import prefect

        self.port = _free_port()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                str(prefect.__module_path__.parent),
                "--factory",
                "prefect.server.api.server:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "error",
                "--lifespan",
                "on",
            ],
            env=self._env,
            stdin=subprocess.DEVNULL,
        )

    def _healthy(self) -> bool:
        import urllib.request  # here: the CLI's top level imports this module (tests/flows/test_cli_startup.py)

        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:  # noqa: S310 - our own loopback URL
                return resp.status == 200
        except OSError:
            return False

    def wait(self, timeout_s: float) -> str:
        """Block until the server answers ``/health``; returns its API URL.

        ``timeout_s`` is counted as Prefect counts it for its own temporary server: in polling
        steps, not the time the health checks themselves take, so a loaded machine (where one
        check can take seconds) does not give up on a server that is still starting."""
        waited = 0.0
        while waited < timeout_s:
            code = self.process.poll() if self.process else None
            if code == _PORT_IN_USE:
                self._launch()
            elif code is not None:
                raise QresError(f"Prefect's temporary API server exited with code {code} before it was ready")
            elif self._healthy():
                return self.url
            time.sleep(0.1)
            waited += 0.1
        self.stop()
        raise QresError(f"Prefect's temporary API server did not answer within {timeout_s:.0f} s")

    def stop(self) -> None:
        """Terminate the server by its pid (kill after 5 s); safe to call twice."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_embedded_api() -> EmbeddedAPI | None:
    """Start the temporary server now if the run would need one (no API configured, ephemeral
    mode allowed); None when Prefect is pointed at a server."""
    if os.environ.get("PREFECT_API_URL"):
        return None
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if settings.api.url or not settings.server.ephemeral.enabled:
        return None
    env = {
        **ONE_SHOT_SERVICES_OFF,
        **os.environ,
        **settings.to_environment_variables(exclude_unset=True),
        # what Prefect's SubprocessASGIServer sets: no UI, ephemeral services only
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
    }
    return EmbeddedAPI(env)
