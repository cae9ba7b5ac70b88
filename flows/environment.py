"""Process environment for embedded runs: local state, no third-party telemetry.

Imported before Prefect, MLflow or Great Expectations are, because those read some
settings at import time. Only fills in variables the user has not set, so a real
Prefect server or MLflow tracking server is chosen simply by exporting its variables.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.support.preflight import MLFLOW_RETRY_BUDGET

if TYPE_CHECKING:
    from flows.embedded_api import EmbeddedAPI

__all__ = ["configure_environment", "quiet_defaults", "embedded_run", "QUIET_DEFAULTS"]

QUIET_DEFAULTS = {
    # Prefect: no analytics from the ephemeral server, no update checks, quiet server logs.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    # The temporary server's start: slow is not dead. Two runs starting at once on a host at load
    # 25-30 (2 cores) took over 90 s; a server that never answers still fails the run in one line.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300",
    # The console shows warnings and errors; every INFO line still goes to the Prefect API (the
    # UI, `prefect flow-run logs`), and `qres run --verbose` shows them here too. Without it a
    # run printed ~45 lines of task states and Prefect's temporary-server advice.
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
    # A task called outside a flow (`qres validate`, tests) logs locally; don't warn that the API misses it.
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    # MLflow and Great Expectations usage telemetry.
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_LOGGING_LEVEL": "WARNING",  # its INFO lines (store migrations, uv detection) are not ours to report
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "DO_NOT_TRACK": "true",
    "GX_ANALYTICS_ENABLED": "false",
    # MLflow's own git-commit lookup prints a warning outside a git work tree.
    "GIT_PYTHON_REFRESH": "quiet",
}


def quiet_defaults() -> None:
    """Telemetry off and third-party logs quiet, for variables the user has not set.

    Run when ``flows`` is imported (flows/__init__.py): MLflow and Great Expectations read these
    when they are imported, which in a worker's flow run happens before any flow code runs.
    """
    for key, value in {**QUIET_DEFAULTS, **MLFLOW_RETRY_BUDGET}.items():
        os.environ.setdefault(key, value)
    # MLflow 3.x compares a DataFrame's columns with a range when it saves the pyfunc model's
    # input example; pandas 3 deprecates that comparison (Pandas4Warning). Harmless, not ours,
    # and scoped to that one message in that one module.
    warnings.filterwarnings("ignore", message="Operation with range is deprecated", module=r"mlflow\.models\.utils")


def configure_environment(state_dir: str | Path, key_dir: str | Path | None = None) -> None:
    """Point Prefect's home at ``state_dir/prefect``, switch telemetry off, and keep the cache's
    HMAC key beside the signing key (``key_dir``; workers inherit the variable)."""
    state = Path(state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(state / "prefect"))
    quiet_defaults()
    if key_dir is not None:
        os.environ["QRES_CACHE_KEY_DIR"] = str(Path(key_dir).resolve())
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _ExpectedErrors) for f in logger.filters):
            logger.addFilter(_ExpectedErrors())


class _ExpectedErrors(logging.Filter):
    """Log expected failures (QresError: bad input; a tracking store outage) as one line, no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        from policies.errors import QresError

        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and (isinstance(exc, QresError) or _tracking_down(exc)):
            record.exc_info, record.exc_text = None, None
        return True


def _tracking_down(exc: BaseException) -> bool:
    from tasks.track import tracking_outage  # MLflow is loaded already when it raised

    return tracking_outage(exc, "", published=False) is not None


@contextmanager
def embedded_run(api: EmbeddedAPI | None = None) -> Iterator[bool]:
    """Around a flow run in this process: no flow-run heartbeats when the API is the embedded one.

    Heartbeats feed a Prefect server's detection of crashed runs; an ephemeral API ends with
    the process, so nothing reads them, and Prefect's heartbeat thread (asleep in 1 s steps)
    holds every flow's end for up to a second. With an API URL configured (a real server, a
    worker) nothing changes. ``api`` (flows/embedded_api.py, started early by the command) is
    waited for and used instead of Prefect's own temporary server, then stopped. Yields whether
    heartbeats were switched off.
    """
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        get_current_settings,
        temporary_settings,
    )

    if api is None and get_current_settings().api.url:  # a server (from the environment, a profile or prefect.toml)
        yield False
        return
    if api is None:
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield True
        return
    url = api.wait(float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")))
    before = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = url  # processes started by the run (a local Dask cluster) inherit it
    try:
        with temporary_settings(updates={PREFECT_API_URL: url, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            try:
                yield True
            finally:
                _drain_prefect_workers()  # the run's last logs and events reach the server before it stops
    finally:
        if before is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = before
        api.stop()


def _drain_prefect_workers() -> None:
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10, at_exit=False)
    EventsWorker.drain_all(timeout=10, at_exit=False)
