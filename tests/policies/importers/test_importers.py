"""The importers on the real shared histories (read from ../shared/realdata, never copied)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from policies.telemetry.importers.statuspage import import_statuspage
from policies.telemetry.importers.upptime import import_upptime, read_upptime_events
from policies.telemetry.ingest import load_telemetry
from tasks.validate import check_telemetry

REAL = Path(__file__).resolve().parents[3] / ".." / "shared" / "realdata"
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason="shared real data not present")


def test_upptime_git_bundle_and_jsonl_agree_and_validate(tmp_path: Path) -> None:
    bundle = REAL / "upptime" / "manticore" / "repo.bundle"
    assert read_upptime_events(bundle) == read_upptime_events(REAL / "upptime" / "manticore" / "commits.jsonl")
    rows = import_upptime(bundle, tmp_path / "out")
    assert rows["incidents"] == 47  # ../shared/realdata/README.md: 47 down events
    report, docs = check_telemetry(load_telemetry(tmp_path / "out"), state_dir=tmp_path / "state")
    assert report.success and docs.is_file()
    checks = pq.read_table(tmp_path / "out" / "health_checks")
    assert set(checks["status"].to_pylist()) >= {"up", "down"}
    with pytest.raises(FileExistsError):
        import_upptime(bundle, tmp_path / "out")


def test_statuspage_github_export_validates(tmp_path: Path) -> None:
    rows = import_statuspage(REAL / "statuspage" / "github" / "incidents.jsonl.gz", tmp_path / "gh")
    assert rows["incidents"] == 1282
    report, _ = check_telemetry(load_telemetry(tmp_path / "gh"))
    assert report.success, report.violations
    assert "git-operations" in report.clean["services"]["service_id"].to_pylist()
