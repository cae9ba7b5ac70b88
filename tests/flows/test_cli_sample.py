"""`qres sample --services N --workloads M --days D --start DATE` at the command line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from flows.cli.app import app

runner = CliRunner()


def test_a_larger_fleet_validates_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "fleet"
    res = runner.invoke(app, ["sample", "--out", str(out), "--services", "60", "--workloads", "80", "--days", "1"])
    assert res.exit_code == 0, res.output
    assert pq.read_metadata(out / "services.parquet").num_rows == 60
    assert pq.read_metadata(out / "workloads.parquet").num_rows == 80
    assert [p.name for p in (out / "health_checks").iterdir()] == ["2026-10-01.parquet"]
    checked = runner.invoke(app, ["validate", "--data", str(out), "--json"])
    assert checked.exit_code == 0, checked.output
    report = json.loads(checked.stdout)
    assert report["success"] is True and report["rows_validated"] >= 60 * 1440 * 2


def test_a_start_date_is_honoured_and_the_future_refused(tmp_path: Path) -> None:
    res = runner.invoke(app, ["sample", "--out", str(tmp_path / "a"), "--days", "1", "--start", "2025-02-03"])
    assert res.exit_code == 0, res.output
    assert [p.name for p in (tmp_path / "a" / "health_checks").iterdir()] == ["2025-02-03.parquet"]
    soon = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%d")
    res = runner.invoke(app, ["sample", "--out", str(tmp_path / "b"), "--days", "1", "--start", soon])
    assert res.exit_code == 1 and "future" in res.output
    assert not (tmp_path / "b").exists()
