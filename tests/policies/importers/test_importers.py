"""The importers on the real shared histories (read from ../shared/realdata, never copied)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from policies.telemetry.importers.statuspage import import_statuspage
from policies.telemetry.importers.upptime import import_upptime
from policies.telemetry.importers.upptime_git import read_upptime_commits
from policies.telemetry.ingest import load_telemetry
from tasks.validate import check_telemetry

REAL = Path(__file__).resolve().parents[3] / ".." / "shared" / "realdata"
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason="shared real data not present")


def test_upptime_git_bundle_and_jsonl_agree_and_validate(tmp_path: Path) -> None:
    bundle = REAL / "upptime" / "manticore" / "repo.bundle"
    assert read_upptime_commits(bundle) == read_upptime_commits(REAL / "upptime" / "manticore" / "commits.jsonl")
    rows = import_upptime(bundle, tmp_path / "out").rows
    assert rows["incidents"] == 47  # ../shared/realdata/README.md: 47 down events
    report, docs = check_telemetry(load_telemetry(tmp_path / "out"), state_dir=tmp_path / "state")
    assert report.success and docs.is_file()
    checks = pq.read_table(tmp_path / "out" / "health_checks")
    assert set(checks["status"].to_pylist()) >= {"up", "down"}
    with pytest.raises(FileExistsError):
        import_upptime(bundle, tmp_path / "out")


def test_statuspage_github_export_validates(tmp_path: Path) -> None:
    report = import_statuspage(REAL / "statuspage" / "github" / "incidents.jsonl.gz", tmp_path / "gh")
    assert report.rows["incidents"] == 1282
    assert "164 incident(s) name no component" in " ".join(report.notes)  # the early ones
    assert report.site("git-operations").down_events > 0
    report, _ = check_telemetry(load_telemetry(tmp_path / "gh"))
    assert report.success, report.violations
    assert "git-operations" in report.clean["services"]["service_id"].to_pylist()


def _import(name: str, tmp_path: Path):
    return import_upptime(REAL / "upptime" / name / "commits.jsonl", tmp_path / name)


def _ended(report, site: str) -> list[str]:
    return [s.ended_by for s in report.site(site).spans]


@pytest.mark.parametrize("name", ["manticore", "honch", "4hse", "3deling"])
def test_every_real_upptime_history_drops_its_template_sites(name: str, tmp_path: Path) -> None:
    report = _import(name, tmp_path)
    assert report.dropped and all("template placeholder" in s.reason for s in report.dropped)
    assert {"google", "wikipedia", "hacker-news"} <= {s.site for s in report.dropped}
    assert report.start_ms > min(s.spans[0].start_ms for s in report.dropped)  # starts after the template
    summary = json.loads((tmp_path / name / "_import_summary.json").read_text())
    assert summary["sites_dropped"] == len(report.dropped) and summary["rows"] == report.rows


def test_real_4hse_sites_come_and_go_as_the_readme_says(tmp_path: Path) -> None:
    report = _import("4hse", tmp_path)
    assert _ended(report, "academy")[-1] == "removed from the site list"
    assert report.site("academy").spans[-1].end_ms < _ms("2025-07-03")
    www = report.site("www").spans
    assert any(
        s.ended_by == "removed from the site list" and _ms("2025-04-01") < s.end_ms < _ms("2025-04-03") for s in www
    )
    assert _ms("2025-07-01") < www[-1].start_ms < _ms("2025-07-03") and www[-1].ended_by == "end of data"
    assert report.site("docs").spans[0].start_ms > _ms("2025-07-01")
    assert {s.site for s in report.kept} >= {"service", "mobile", "dev", "auth", "ai", "mcp"}
    assert report.rows["incidents"] == 45  # the README's 45 changes from up to down


def test_real_3deling_reports_two_sites_down_until_the_end(tmp_path: Path) -> None:
    report = _import("3deling", tmp_path)
    retired = {s.site for s in report.kept if "probably retired" in s.spans[-1].ended_by}
    assert retired == {"clients-portal", "3-deling"}
    assert report.site("clients-portal").spans[-1].end_ms < _ms("2021-06-26")
    fileshare = report.site("fileshare").spans
    assert len(fileshare) == 1 and fileshare[0].end_ms - fileshare[0].start_ms < 3 * 86_400_000
    assert report.rows["incidents"] == 74 - 2  # 74 changes to down; the two endless runs are not outages


def _ms(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1000)
