"""Label-to-service mapping, probes and latency thresholds, against a loopback server answering the range API."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from policies.telemetry.importers.prometheus import PrometheusSpec, chunks, fetch_prometheus
from policies.telemetry.importers.pull import pull_into, read_watermark
from tests.policies.importers.stub_http import serve

T0 = 1_786_000_200  # seconds, on a 5-minute grid


def _matrix(query: str, start: int, end: int, step: int) -> dict:
    """Two targets seen by two probes; the api is slow (2 s) from minute 10 to 19 and down at minute 30-34."""
    result = []
    for probe in ("eu", "us"):
        for target in ("https://api.example.com", "db:5432"):
            values = []
            for t in range(start, end + 1, step):
                minute = (t - T0) // 60
                api = target.startswith("https")
                if query == "probe_success":
                    v = 0 if api and 30 <= minute < 35 and probe == "eu" else 1
                elif query == "probe_duration_seconds":
                    v = 2.0 if api and 10 <= minute < 20 else 0.1
                else:
                    v = 200
                values.append([t, str(v)])
            labels = {"__name__": query, "instance": target, "job": "blackbox", "probe": probe}
            result.append({"metric": labels, "values": values})
    return {"status": "success", "data": {"resultType": "matrix", "result": result}}


def _route(path: str, q: dict, headers: dict):
    assert path == "/api/v1/query_range"
    start, end, step = int(float(q["start"])), int(float(q["end"])), int(float(q["step"]))
    if (end - start) // step + 1 > 11_000:
        return 400, {}, {"status": "error", "errorType": "bad_data", "error": "exceeded maximum resolution"}
    return 200, {}, _matrix(q["query"], start, end, step)


def test_labels_probes_and_latency_threshold(tmp_path: Path) -> None:
    with serve(_route) as (url, seen):
        spec = PrometheusSpec(url=url, resolution_min=5, degraded_ms=1000, service_map={"db:5432": "payments-db"})
        pull = fetch_prometheus(spec, T0 * 1000, (T0 + 3600) * 1000)
    assert pull.services == ["https-api-example-com", "payments-db"] and len(seen) == 3
    rows = [r for t in pull.health for r in t.to_pylist()]
    assert {(r["service_id"], r["probe"]) for r in rows} == {
        (s, p) for s in pull.services for p in ("eu", "us")
    }  # fmt: skip
    api_eu = {
        int(r["ts"].timestamp()) - T0: r["status"] for r in rows if r["probe"] == "eu" and "api" in r["service_id"]
    }
    assert api_eu[600] == api_eu[900] == "degraded" and api_eu[1800] == "down" and api_eu[0] == api_eu[2400] == "up"
    assert all(r["status"] == "up" for r in rows if r["service_id"] == "payments-db")
    inc = pull.incidents.to_pylist()
    assert [(i["affected"], int(i["started_at"].timestamp()) - T0, int(i["resolved_at"].timestamp()) - T0) for i in inc] == [
        (["https-api-example-com"], 1800, 2100)
    ]  # fmt: skip


def test_long_ranges_are_chunked_under_the_server_limit(tmp_path: Path) -> None:
    assert chunks(0, 600, 60, 5) == [(0, 240), (300, 540), (600, 600)]
    with serve(_route) as (url, seen):
        spec = PrometheusSpec(url=url, step_s=60, resolution_min=5)
        report = pull_into(spec, tmp_path / "landing", "p", since_ms=T0 * 1000, until_ms=(T0 + 9 * 86_400) * 1000)
    points = 9 * 86_400 // 60  # 12,960 per series: two queries each
    assert report["requests"] == len(seen) == 6 and report["health_checks"] == 4 * points // 5
    assert read_watermark(tmp_path / "landing", "p") == (T0 + 9 * 86_400) * 1000
    assert pq.read_table(tmp_path / "landing" / "health_checks").num_rows == report["health_checks"]
