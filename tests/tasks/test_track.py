"""Run artifacts on a real MLflow SQLite store: files keep their folders, names cannot escape."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture()
def target(tmp_path: Path):
    from tasks.track import TrackingTarget

    return TrackingTarget(f"sqlite:///{tmp_path / 'mlflow.db'}", "test", tmp_path / "artifacts")


def test_artifact_names_keep_their_subfolders(target, prefect_harness) -> None:
    from tasks.track import log_run_results, start_run

    run_id = start_run(target, run_name="t", params={}, inputs={}, tags={})
    files = {"index.html": b"<html>", "quarantine/health_checks.parquet": b"PAR1", "quarantine/incidents.parquet": b"x"}
    log_run_results.fn(target, run_id, metrics={"m": 1.0}, files=files, json_artifacts={}, artifact_dir="data_docs")
    client = target.client()
    assert {a.path for a in client.list_artifacts(run_id, "data_docs/quarantine")} == {
        "data_docs/quarantine/health_checks.parquet",
        "data_docs/quarantine/incidents.parquet",
    }
    local = Path(
        client.download_artifacts(
            run_id, "data_docs/quarantine/health_checks.parquet", str(target.artifact_root.parent / "dl")
        )
    )
    assert local.read_bytes() == b"PAR1"


def test_an_artifact_name_cannot_leave_its_folder(target, prefect_harness) -> None:
    from tasks.track import log_run_results, start_run

    run_id = start_run(target, run_name="t", params={}, inputs={}, tags={})
    with pytest.raises(ValueError, match="leaves the artifact folder"):
        log_run_results.fn(target, run_id, metrics={}, files={"../escape.txt": b"x"}, json_artifacts={})
