"""Shared fixtures: a quiet environment, a small real sample, a Prefect test harness."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Telemetry off and Prefect's home in a throwaway folder before anything imports Prefect.
_STATE = Path(tempfile.mkdtemp(prefix="qres-test-state-"))
from flows.environment import configure_environment  # noqa: E402

configure_environment(_STATE)
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


@pytest.fixture(scope="session")
def small_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two days of sample telemetry, written once per test session (read-only for tests)."""
    from policies.telemetry.sample import write_sample

    out = tmp_path_factory.mktemp("sample") / "data"
    write_sample(out, seed=7, days=2)
    return out


@pytest.fixture(scope="session")
def prefect_harness():
    """A real, temporary Prefect API (SQLite) shared by the flow tests."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
