"""A real Prometheus, its history made by promtool from the manticore Upptime history (two weeks of real outages)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from flows.cli.app import app
from policies.telemetry.importers.http import ConnectorError
from policies.telemetry.importers.prometheus import PrometheusSpec
from policies.telemetry.importers.pull import pull_into, read_watermark
from policies.telemetry.importers.upptime import import_upptime, read_upptime_events
from tests.policies.importers import prom_server as ps

REAL = Path(__file__).resolve().parents[3] / ".." / "shared" / "realdata"
HISTORY = REAL / "upptime" / "manticore" / "commits.jsonl"
STEP_S, RES_MIN = 60, 5
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason="shared real data not present")
runner = CliRunner()


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rounded_history(events, path: Path) -> Path:
    """The same history with every change moved up to the next step (what a probe every step sees)."""
    step = STEP_S * 1000
    with path.open("w") as f:
        for t, site, doc in events:
            ceil = -(-t // step) * step
            content = None if doc is None else yaml.safe_dump(doc)
            f.write(json.dumps({"author_time": _iso(ceil), "files": {f"history/{site}.yml": content}}) + "\n")
    return path


def _current_sites(events) -> set[str]:
    last = {}
    for _, site, doc in events:
        last[site] = doc
    return {s for s, d in last.items() if d is not None}


def _checks(folder: Path, sites: set[str], until_ms: int) -> set[tuple]:
    t = pq.read_table(folder / "health_checks").to_pylist()
    return {
        (r["service_id"], int(r["ts"].timestamp() * 1000), r["status"])
        for r in t
        if r["service_id"] in sites and int(r["ts"].timestamp() * 1000) < until_ms
    }


def _incidents(tables: list, sites: set[str]) -> set[tuple]:
    return {
        (r["affected"][0], r["started_at"], r["resolved_at"])
        for t in tables
        for r in t.to_pylist()
        if r["affected"][0] in sites
    }


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    events = read_upptime_events(HISTORY)
    work = tmp_path_factory.mktemp("prom")
    expected = work / "upptime"
    import_upptime(_rounded_history(events, work / "rounded.jsonl"), expected, resolution_min=RES_MIN)
    series = ps.site_series(events, STEP_S)
    first, last = min(t for t, _, _ in events), max(t for t, _, _ in events)
    res = RES_MIN * 60_000
    return {
        "events": events,
        "series": series,
        "work": work,
        "expected": expected,
        "since": first // res * res,
        "until": (last // res + 2) * res,
        "sites": _current_sites(events),
    }


@pytest.mark.skipif(
    ps.PROMETHEUS is None or ps.PROMTOOL is None, reason="prometheus not installed (.ci/run installs it)"
)
def test_import_from_prometheus_matches_upptime_at_step_resolution(history, tmp_path: Path) -> None:
    om = tmp_path / "history.om"
    samples = ps.write_openmetrics(om, history["series"], 0, float("inf"))
    ps.create_blocks(om, tmp_path / "tsdb")
    with ps.prometheus(tmp_path / "tsdb", tmp_path) as url:
        res = runner.invoke(
            app,
            ["import", "prometheus", "--url", url, "--since", _iso(history["since"]), "--until",
             _iso(history["until"]), "--step", str(STEP_S), "--resolution-min", str(RES_MIN),
             "--out", str(tmp_path / "prom")],
        )  # fmt: skip
        assert res.exit_code == 0, res.output
    sites = history["sites"]
    end = history["until"] - RES_MIN * 60_000 * 2
    got = _checks(tmp_path / "prom", sites, end)
    want = _checks(history["expected"], sites, end)
    assert samples > 200_000 and len(want) > 30_000
    assert got == want
    got_inc = _incidents([pq.read_table(tmp_path / "prom" / "incidents.parquet")], sites)
    want_inc = _incidents([pq.read_table(history["expected"] / "incidents.parquet")], sites)
    assert len(want_inc) >= 20 and got_inc == want_inc


def _cut_inside_an_outage(history) -> int:
    """A watermark on the grid in the middle of a long outage, so the second pull must continue it."""
    res = RES_MIN * 60_000
    for inc in pq.read_table(history["expected"] / "incidents.parquet").to_pylist():
        s, e = inc["started_at"], inc["resolved_at"]
        if inc["affected"][0] in history["sites"] and e is not None and (e - s).total_seconds() > 3600:
            mid = int((s.timestamp() + e.timestamp()) / 2 * 1000)
            return mid // res * res
    raise AssertionError("no outage longer than an hour in the history")


@pytest.mark.skipif(
    ps.PROMETHEUS is None or ps.PROMTOOL is None, reason="prometheus not installed (.ci/run installs it)"
)
def test_nightly_pull_is_incremental_from_the_watermark(history, tmp_path: Path) -> None:
    cut = _cut_inside_an_outage(history)
    tsdb, landing = tmp_path / "tsdb", tmp_path / "landing"
    ps.write_openmetrics(tmp_path / "a.om", history["series"], 0, cut / 1000)
    ps.create_blocks(tmp_path / "a.om", tsdb)
    config = tmp_path / "qres.toml"
    with ps.prometheus(tsdb, tmp_path) as url:
        config.write_text(
            f'data_dir = "{landing}"\n[sources.blackbox]\nkind = "prometheus"\nurl = "{url}"\n'
            f'since = "{_iso(history["since"])}"\nstep_s = {STEP_S}\nresolution_min = {RES_MIN}\n'
        )
        first = runner.invoke(app, ["pull", "--config", str(config), "--until", _iso(cut), "--json"])
        assert first.exit_code == 0, first.output
    assert read_watermark(landing, "blackbox") == cut
    # New samples arrive as a new block; Prometheus is restarted over the same data folder.
    ps.write_openmetrics(tmp_path / "b.om", history["series"], cut / 1000, float("inf"))
    ps.create_blocks(tmp_path / "b.om", tsdb)
    with ps.prometheus(tsdb, tmp_path) as url:
        config.write_text(config.read_text().replace(config.read_text().split('url = "')[1].split('"')[0], url))
        second = runner.invoke(app, ["pull", "--config", str(config), "--until", _iso(history["until"]), "--json"])
        assert second.exit_code == 0, second.output
    report = json.loads(second.stdout)[0]
    assert report["since_ms"] == cut and report["until_ms"] == history["until"]
    parts = sorted((landing / "health_checks").glob("*.parquet"))
    assert len(parts) == 2
    newer = pq.read_table(parts[1])
    assert newer.num_rows == report["health_checks"] > 0
    assert min(t.timestamp() * 1000 for t in newer["ts"].to_pylist()) >= cut  # only the new range was fetched
    sites = history["sites"]
    end = history["until"] - RES_MIN * 60_000 * 2
    assert _checks(landing, sites, end) == _checks(history["expected"], sites, end)
    got_inc = _incidents([pq.read_table(landing / "incidents")], sites)
    want_inc = _incidents([pq.read_table(history["expected"] / "incidents.parquet")], sites)
    assert got_inc == want_inc  # the outage open at the watermark was continued, not split
    from policies.telemetry.ingest import load_telemetry
    from tasks.validate import check_telemetry

    report_v, _ = check_telemetry(load_telemetry(landing), state_dir=tmp_path / "state")
    assert report_v.success, report_v.violations


@pytest.mark.skipif(
    ps.PROMETHEUS is None or ps.PROMTOOL is None, reason="prometheus not installed (.ci/run installs it)"
)
def test_bad_query_unreachable_and_empty_refuse_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "tsdb").mkdir()
    with ps.prometheus(tmp_path / "tsdb", tmp_path) as url:
        spec = PrometheusSpec(url=url, success_query="probe_success{", retries=0)
        with pytest.raises(ConnectorError, match=r"HTTP 400: .*parse error.*query 'probe_success\{'"):
            pull_into(spec, tmp_path / "l", "p", since_ms=1_786_000_000_000, until_ms=1_786_003_600_000)
        res = runner.invoke(
            app, ["import", "prometheus", "--url", url, "--since", "2026-08-12", "--until", "2026-08-13", "--out",
                  str(tmp_path / "empty")],
        )  # fmt: skip
        assert res.exit_code == 1 and "returned no series" in res.output
    res = runner.invoke(app, ["import", "prometheus", "--url", url, "--since", "1h", "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "cannot reach" in res.output and len(res.output.strip().splitlines()) <= 2
    assert not (tmp_path / "l").exists() and not (tmp_path / "o").exists() and not (tmp_path / "empty").exists()
