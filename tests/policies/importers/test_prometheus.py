"""A real Prometheus, its history made by promtool from the manticore Upptime history (two weeks of real outages)."""

from __future__ import annotations

import json
import shutil
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
from policies.telemetry.importers.upptime import import_upptime
from policies.telemetry.importers.upptime_git import read_upptime_events
from tests.policies.importers import prom_server as ps

REAL = Path(__file__).resolve().parents[3] / ".." / "shared" / "realdata"
HISTORY = REAL / "upptime" / "manticore" / "commits.jsonl"
STEP_S, RES_MIN = 300, 5  # a probe every 5 minutes (as Upptime checks); promtool time grows with samples
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason="shared real data not present")
runner = CliRunner()


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rounded_history(events, path: Path) -> Path:
    """The same history with every change moved up to the next step (what a probe every step sees).

    Of several changes of a site within one step only the last is seen.
    """
    step = STEP_S * 1000
    seen = {(-(-t // step) * step, site): i for i, (t, site, _) in enumerate(events)}
    with path.open("w") as f:
        for (ceil, site), i in sorted(seen.items(), key=lambda kv: kv[1]):
            doc = events[i][2]
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
    out = {
        "events": events,
        "series": series,
        "work": work,
        "expected": expected,
        "since": first // res * res,
        "until": (last // res + 2) * res,
        "sites": _current_sites(events),
    }
    # Two sets of blocks, before and after a watermark inside an outage, made once for every test here
    cut = out["cut"] = _cut_inside_an_outage(out)
    for part, (t0, t1) in {"a": (0, cut / 1000), "b": (cut / 1000, float("inf"))}.items():
        out[f"samples_{part}"] = ps.write_openmetrics(work / f"{part}.om", series, t0, t1, alerts=True, step_s=STEP_S)
        ps.create_blocks(work / f"{part}.om", work / f"blocks-{part}")
    return out


def _tsdb(history, dest: Path, *parts: str) -> Path:
    for part in parts:
        shutil.copytree(history["work"] / f"blocks-{part}", dest, dirs_exist_ok=True)
    return dest


@pytest.mark.skipif(
    ps.PROMETHEUS is None or ps.PROMTOOL is None, reason="prometheus not installed (.ci/run installs it)"
)
def test_import_from_prometheus_matches_upptime_at_step_resolution(history, tmp_path: Path) -> None:
    samples = history["samples_a"] + history["samples_b"]
    with ps.prometheus(_tsdb(history, tmp_path / "tsdb", "a", "b"), tmp_path) as url:
        res = runner.invoke(
            app,
            ["import", "prometheus", "--url", url, "--since", _iso(history["since"]), "--until",
             _iso(history["until"]), "--step", str(STEP_S), "--resolution-min", str(RES_MIN),
             "--out", str(tmp_path / "prom")],
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        alerts = runner.invoke(
            app,
            ["import", "prometheus", "--url", url, "--since", _iso(history["since"]), "--until",
             _iso(history["until"]), "--alerts", "ProbeDown", "--step", str(STEP_S), "--out", str(tmp_path / "alerts")],
        )  # fmt: skip
        assert alerts.exit_code == 0, alerts.output
    sites = history["sites"]
    end = history["until"] - RES_MIN * 60_000 * 2
    got = _checks(tmp_path / "prom", sites, end)
    want = _checks(history["expected"], sites, end)
    assert samples > 100_000 and len(want) > 30_000
    assert got == want
    got_inc = _incidents([pq.read_table(tmp_path / "prom" / "incidents.parquet")], sites)
    want_inc = _incidents([pq.read_table(history["expected"] / "incidents.parquet")], sites)
    assert len(want_inc) >= 20 and got_inc == want_inc
    # ALERTS firing intervals give the same (resolved) outages, with the alert's severity label
    fired = pq.read_table(tmp_path / "alerts" / "incidents.parquet")
    assert set(fired["severity"].to_pylist()) == {1}
    resolved = {i for i in want_inc if i[2] is not None}
    assert {i for i in _incidents([fired], sites) if i[2] is not None} == resolved


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
    cut = history["cut"]
    tsdb, landing = _tsdb(history, tmp_path / "tsdb", "a"), tmp_path / "landing"
    config = tmp_path / "qres.toml"
    with ps.prometheus(tsdb, tmp_path) as url:
        config.write_text(
            f'data_dir = "{landing}"\n[sources.blackbox]\nkind = "prometheus"\nurl = "{url}"\n'
            f'since = "{_iso(history["since"])}"\nstep_s = {STEP_S}\nresolution_min = {RES_MIN}\nmax_points = 500\n'
        )
        first = runner.invoke(app, ["pull", "--config", str(config), "--until", _iso(cut), "--json"])
        assert first.exit_code == 0, first.output
    assert read_watermark(landing, "blackbox") == cut
    # New samples arrive as new blocks; Prometheus is restarted over the same data folder.
    _tsdb(history, tsdb, "b")
    with ps.prometheus(tsdb, tmp_path) as url:
        config.write_text(config.read_text().replace(config.read_text().split('url = "')[1].split('"')[0], url))
        second = runner.invoke(app, ["pull", "--config", str(config), "--until", _iso(history["until"]), "--json"])
        assert second.exit_code == 0, second.output
    report = json.loads(second.stdout)[0]
    assert report["since_ms"] == cut and report["until_ms"] == history["until"]
    span_points = (history["until"] - cut) // (STEP_S * 1000)
    assert report["requests"] == 3 * -(-span_points // 500)  # 3 queries, each chunked to 500 points
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
        assert res.exit_code == 1 and "returned no series" in " ".join(res.output.split())
    res = runner.invoke(app, ["import", "prometheus", "--url", url, "--since", "1h", "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "cannot reach" in " ".join(res.output.split())
    assert not (tmp_path / "l").exists() and not (tmp_path / "o").exists() and not (tmp_path / "empty").exists()
