"""Process environment for embedded runs: local state, no third-party telemetry.

Imported before Prefect, MLflow or Great Expectations are, because those read some
settings at import time. Only fills in variables the user has not set, so a real
Prefect server or MLflow tracking server is chosen simply by exporting its variables.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["configure_environment", "QUIET_DEFAULTS"]

QUIET_DEFAULTS = {
    # Prefect: no analytics from the ephemeral server, no update checks, quiet server logs.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    # MLflow and Great Expectations usage telemetry.
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_LOGGING_LEVEL": "WARNING",  # its INFO lines (store migrations, uv detection) are not ours to report
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "DO_NOT_TRACK": "true",
    "GX_ANALYTICS_ENABLED": "false",
    # MLflow's own git-commit lookup prints a warning outside a git work tree.
    "GIT_PYTHON_REFRESH": "quiet",
}


def configure_environment(state_dir: str | Path) -> None:
    """Point Prefect's home at ``state_dir/prefect`` and switch telemetry off."""
    state = Path(state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(state / "prefect"))
    for key, value in QUIET_DEFAULTS.items():
        os.environ.setdefault(key, value)
