"""Google Cloud incidents.json and AWS Health Dashboard history, on hand-made examples of their public formats."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from policies.errors import DataValidationError
from policies.telemetry.importers.cloud import import_aws, import_gcp
from policies.telemetry.ingest import load_telemetry
from tasks.validate import check_telemetry

T0 = datetime(2024, 1, 1, 8, tzinfo=UTC)


def _iso(hours: float, tz: str = "+00:00") -> str:
    offset = timedelta(hours=int(tz[:3])) if tz != "Z" else timedelta(0)
    return (T0 + timedelta(hours=hours) + offset).replace(tzinfo=None).isoformat() + tz


def _state(out: Path, service: str, hours: float) -> str:
    t = pq.read_table(out / "health_checks")
    t = t.filter(pc.equal(t["service_id"], service))
    at = T0 + timedelta(hours=hours)
    rows = [s for ts, s in zip(t["ts"].to_pylist(), t["status"].to_pylist()) if ts <= at]
    return rows[-1]


GCP = [
    {  # Cloud Storage: disruption, then outage, resolved after 3 h; times given in +02:00
        "id": "a", "begin": _iso(0, "+02:00"), "end": _iso(3, "+02:00"), "severity": "high",
        "status_impact": "SERVICE_OUTAGE", "external_desc": "Storage errors",
        "affected_products": [{"title": "Cloud Storage", "id": "st"}],
        "updates": [{"when": _iso(0, "+02:00"), "status": "SERVICE_DISRUPTION"},
                    {"when": _iso(1, "Z"), "status": "SERVICE_OUTAGE"}],
    },
    {  # overlaps a: Storage stays degraded after a resolves
        "id": "c", "begin": _iso(2), "end": _iso(5), "severity": "low", "status_impact": "SERVICE_DISRUPTION",
        "affected_products": [{"title": "Cloud Storage", "id": "st"}], "updates": [],
    },
    {  # later, the product was renamed: same id, new title
        "id": "r", "begin": _iso(24 * 30), "end": _iso(24 * 30 + 1), "severity": "low",
        "status_impact": "SERVICE_DISRUPTION", "affected_products": [{"title": "Google Cloud Storage", "id": "st"}],
    },
    {  # never resolved, long before the end: closed at its last update
        "id": "d", "begin": _iso(24 * 10), "severity": "medium", "status_impact": "SERVICE_OUTAGE",
        "affected_products": [{"title": "BigQuery", "id": "bq"}], "updates": [{"when": _iso(24 * 10 + 2), "status": "SERVICE_OUTAGE"}],
    },
    {"id": "e", "begin": _iso(24 * 40), "end": _iso(24 * 40 + 1), "status_impact": "SERVICE_DISRUPTION",
     "service_key": "console", "service_name": "Cloud Console"},  # no products: its service
    {"id": "f", "begin": "2024-03-01T00:00:00", "end": "2024-03-01T01:00:00", "status_impact": "SERVICE_INFORMATION"},
]  # fmt: skip


def test_gcp_incidents_overlap_rename_never_resolved_and_time_zones(tmp_path: Path) -> None:
    src = tmp_path / "incidents.json"
    src.write_text(json.dumps(GCP))
    report = import_gcp(src, tmp_path / "out", resolution_min=15)
    out = tmp_path / "out"
    services = set(pq.read_table(out / "services.parquet")["service_id"].to_pylist())
    assert {"google-cloud-storage", "bigquery", "cloud-console"} <= services and "cloud-storage" not in services
    s = "google-cloud-storage"
    assert [_state(out, s, h) for h in (0.1, 1.1, 3.5, 5.5)] == ["degraded", "down", "degraded", "up"]
    assert _state(out, "bigquery", 24 * 10 + 1) == "down" and _state(out, "bigquery", 24 * 12) == "up"
    incidents = {r["incident_id"]: r for r in pq.read_table(out / "incidents.parquet").to_pylist()}
    assert incidents["d"]["resolved_at"] is None and incidents["f"]["affected"] == []
    assert incidents["a"]["started_at"] == T0 and incidents["a"]["severity"] == 1
    notes = " ".join(report.notes)
    assert "1 never resolved, of which 1 closed at their last update" in notes
    assert "1 incident(s) name no component" in notes and "2 time(s) without an offset" in notes
    assert check_telemetry(load_telemetry(out))[0].success


def _aws_doc() -> dict:
    sec = lambda h: str(int((T0 + timedelta(hours=h)).timestamp()))  # noqa: E731 - a one-line helper
    ms = lambda h: int((T0 + timedelta(hours=h)).timestamp() * 1000)  # noqa: E731 - a one-line helper
    return {
        "ec2-us-east-1": [
            {"arn": "e1", "service_name": "Amazon EC2 (N. Virginia)", "date": sec(0), "status": "0", "summary": "EC2",
             "event_log": [{"timestamp": int(sec(0)), "status": 2}, {"timestamp": int(sec(1)), "status": 3},
                           {"timestamp": int(sec(4)), "status": 0}]},
        ],
        "multiple-us-east-1": [
            {"arn": "m1", "service_name": "Multiple services", "date": sec(2), "status": "3", "summary": "many",
             "impacted_services": {"lambda-us-east-1": {"service_name": "AWS Lambda (N. Virginia)"},
                                   "ec2-us-east-1": {"service_name": "Amazon EC2 (N. Virginia)"}},
             "impacted_service_status_changes": [
                 {"service": "lambda-us-east-1", "current_status": 3, "timestamp": ms(2)},
                 {"service": "lambda-us-east-1", "current_status": 0, "timestamp": ms(6)},
                 {"service": "ec2-us-east-1", "current_status": 2, "timestamp": ms(2)},
                 {"service": "ec2-us-east-1", "current_status": 0, "timestamp": ms(5)}]},
        ],
        "s3-us-west-2": [  # still open at the end of the history
            {"arn": "s1", "service_name": "Amazon S3 (Oregon)", "date": sec(7), "status": "2",
             "event_log": [{"timestamp": int(sec(7)), "status": 2}]},
        ],
    }  # fmt: skip


def test_aws_history_overlapping_services_open_event_and_utf16(tmp_path: Path) -> None:
    src = tmp_path / "historyevents.json"
    src.write_bytes(json.dumps(_aws_doc()).encode("utf-16"))  # as the dashboard serves it, with a BOM
    report = import_aws(src, tmp_path / "out", resolution_min=15)
    out = tmp_path / "out"
    ec2, lam, s3 = "amazon-ec2-n-virginia", "aws-lambda-n-virginia", "amazon-s3-oregon"
    assert [_state(out, ec2, h) for h in (0.1, 1.1, 4.5, 5.5)] == ["degraded", "down", "degraded", "up"]
    assert [_state(out, lam, h) for h in (2.1, 6.5)] == ["down", "up"]
    incidents = {r["incident_id"]: r for r in pq.read_table(out / "incidents.parquet").to_pylist()}
    assert incidents["s1"]["resolved_at"] is None and _state(out, s3, 7.1) == "degraded"
    assert sorted(incidents["m1"]["affected"]) == [ec2, lam] and incidents["m1"]["severity"] == 1
    assert "1 never resolved, of which 0 closed" in " ".join(report.notes)
    assert report.site("ec2-us-east-1").down_events == 1
    with pytest.raises(DataValidationError, match="object of service key"):
        (tmp_path / "bad.json").write_text("[]")
        import_aws(tmp_path / "bad.json", tmp_path / "bad")


def test_statuspage_overlapping_incidents_never_clear_each_other(tmp_path: Path) -> None:
    from policies.telemetry.importers.statuspage import import_statuspage

    def upd(h: float, status: str) -> dict:
        return {"status": "identified", "display_at": _iso(h, "Z"), "created_at": _iso(h, "Z"),
                "affected_components": [{"code": "api", "name": "API Requests", "new_status": status}]}  # fmt: skip

    incidents = [
        {"id": "x", "name": "x", "impact": "major", "created_at": _iso(0), "started_at": _iso(0), "resolved_at": _iso(3),
         "incident_updates": [upd(0, "major_outage")]},
        {"id": "y", "name": "y", "impact": "minor", "created_at": _iso(1), "started_at": _iso(1), "resolved_at": _iso(6),
         "incident_updates": [upd(1, "partial_outage")]},
        {"id": "z", "name": "z", "impact": "minor", "created_at": _iso(240), "started_at": _iso(240),
         "resolved_at": None, "incident_updates": [upd(240, "major_outage")]},  # never resolved, long ago
        {"id": "w", "name": "w", "impact": "none", "created_at": _iso(500), "resolved_at": _iso(501),
         "incident_updates": [{"status": "resolved", "display_at": _iso(501), "created_at": _iso(501)}]},
    ]  # fmt: skip
    (tmp_path / "inc.json").write_text(json.dumps({"incidents": incidents}))
    report = import_statuspage(tmp_path / "inc.json", tmp_path / "out", resolution_min=15)
    out = tmp_path / "out"
    assert [_state(out, "api-requests", h) for h in (0.1, 2, 4, 6.5)] == ["down", "down", "degraded", "up"]
    assert _state(out, "api-requests", 240.1) == "down" and _state(out, "api-requests", 241) == "up"  # not for ever
    assert "1 never resolved, of which 1 closed" in " ".join(report.notes)
    assert "1 incident(s) name no component" in " ".join(report.notes)
