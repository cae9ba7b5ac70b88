"""The nightly's pulls of PagerDuty (from its watermark, against a loopback API) and Backstage (a snapshot each run)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from policies.schema import TABLES
from policies.telemetry.importers.http import ConnectorError
from policies.telemetry.importers.land import pull_order, pull_source
from policies.telemetry.importers.spec import parse_sources, parse_time
from tests.policies.importers.stub_http import serve
from tests.policies.importers.test_connectors_http import CATALOG, INCIDENTS, _page


def _incidents(landing: Path, name: str) -> dict[str, dict]:
    table = pq.read_table(landing / "incidents" / f"source={name}" / "incidents.parquet")
    return {r["incident_id"]: r for r in table.to_pylist()}


def test_pagerduty_pulls_from_its_watermark_and_revisits_open_incidents(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PAGERDUTY_TOKEN", "tok")
    state = {"incidents": [i for i in INCIDENTS if i["created_at"] < "2026-08-14T12"]}

    def route(path: str, q: dict, headers: dict):
        chosen = [i for i in state["incidents"] if q["since"] <= i["created_at"] < q["until"]]
        return 200, {}, _page(chosen, int(q.get("offset", 0)), int(q["limit"]))

    landing = tmp_path / "landing"
    with serve(route) as (url, seen):
        entry = parse_sources({"pd": {"kind": "pagerduty", "url": url, "since": "2026-08-01", "page_limit": 2}})["pd"]
        with pytest.raises(ConnectorError, match="no watermark yet"):
            pull_source(entry, landing)  # no since given to this call, no watermark: refused, nothing written
        assert not landing.exists()
        first = pull_source(
            entry, landing, since_ms=parse_time(entry.since), until_ms=parse_time("2026-08-14T12:00:00Z")
        )
        got = _incidents(landing, "pd")
        assert sorted(got) == ["Q1AAA", "Q1BBB", "Q1CCC", "Q1DDD"] == sorted(i["id"] for i in state["incidents"])
        assert got["Q1CCC"]["resolved_at"] is None and first["until_ms"] == parse_time("2026-08-14T12:00:00Z")
        # Later: Q1CCC (open at the watermark) is resolved, and Q1EEE is new.
        resolved = dict(INCIDENTS[2], status="resolved", resolved_at="2026-08-15T03:00:00Z")
        state["incidents"] = [*INCIDENTS[:2], resolved, *INCIDENTS[3:]]
        seen.clear()
        second = pull_source(entry, landing, until_ms=parse_time("2026-08-16T00:00:00Z"))
    assert seen[0]["query"]["since"] == "2026-08-14T00:00:00Z"  # the oldest open incident's start, not the watermark
    got = _incidents(landing, "pd")
    assert sorted(got) == [i["id"] for i in INCIDENTS]  # one row per incident id
    assert got["Q1CCC"]["resolved_at"].isoformat() == "2026-08-15T03:00:00+00:00"
    assert second["since_ms"] == first["until_ms"] and second["tables"] == {"incidents": 5}
    assert json.loads((landing / "_pull" / "pd.json").read_text())["until_ms"] == parse_time("2026-08-16T00:00:00Z")


def test_pagerduty_export_and_backstage_files_land_as_a_snapshot(tmp_path: Path) -> None:
    export, catalog, landing = tmp_path / "pd.json", tmp_path / "catalog", tmp_path / "landing"
    export.write_text(json.dumps(_page(INCIDENTS, 0, 100)))
    catalog.mkdir()
    (catalog / "catalog-info.yaml").write_text(CATALOG)
    landing.mkdir()
    region = {"service_id": "region-imported", "kind": "region", "tier": 0, "capacity": 100.0, "region": None}
    pq.write_table(pa.Table.from_pylist([region], schema=TABLES["services"]), landing / "services.parquet")
    entries = parse_sources(
        {
            "pd": {"kind": "pagerduty", "export": str(export)},
            "cat": {"kind": "backstage", "files": [str(catalog)]},
        }
    )
    assert [e.name for e in pull_order(entries.values())] == ["cat", "pd"]  # the catalog first, incidents last
    for e in pull_order(entries.values()):
        pull_source(e, landing)
    assert sorted(_incidents(landing, "pd")) == [i["id"] for i in INCIDENTS]
    services = set(pq.read_table(landing / "services.parquet")["service_id"].to_pylist())
    assert services == {"region-imported", "shop", "checkout", "cart", "maps", "payments-db", "pricing"}
    # The catalog drops the API pricing (and cart's dependency on it): the next pull follows the catalog.
    docs = CATALOG.split("---\n")
    kept = [d for d in docs if "name: pricing" not in d]
    (catalog / "catalog-info.yaml").write_text("---\n".join(kept).replace(', dependsOn: ["api:pricing"]', ""))
    pull_source(entries["cat"], landing)
    services = set(pq.read_table(landing / "services.parquet")["service_id"].to_pylist())
    assert services == {"region-imported", "shop", "checkout", "cart", "maps", "payments-db"}
    deps = pq.read_table(landing / "dependencies.parquet").to_pylist()
    assert deps and all("pricing" not in (d["service_id"], d["depends_on"]) for d in deps)
    broken = parse_sources({"cat": {"kind": "backstage"}})["cat"]
    with pytest.raises(ConnectorError, match=r'backstage source .cat.: set files = \["catalog"\]'):
        pull_source(broken, landing)


def _sorted(table: pa.Table, key: tuple[str, ...]) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda r: [str(r[k]) for k in key])


def test_cloud_status_histories_land_what_qres_import_writes(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from flows.cli.app import app
    from policies.telemetry.ingest import load_telemetry
    from tests.policies.importers.test_cloud_importers import GCP, _aws_doc

    (tmp_path / "gcp.json").write_text(json.dumps(GCP))
    (tmp_path / "aws.json").write_bytes(json.dumps(_aws_doc()).encode("utf-16"))
    cfg = tmp_path / "qres.toml"  # relative paths are taken from the config's folder, as data_dir is
    cfg.write_text(
        'data_dir = "landing"\n[sources.google]\nkind = "gcp"\npath = "gcp.json"\nresolution_min = 15\n'
        '[sources.amazon]\nkind = "aws"\npath = "aws.json"\nresolution_min = 15\n'
    )
    runner = CliRunner()
    pulled = runner.invoke(app, ["pull", "--config", str(cfg), "--json"])
    assert pulled.exit_code == 0, pulled.output
    assert [r["source"] for r in json.loads(pulled.stdout)] == ["google", "amazon"]  # by kind (gcp, aws), then name
    want = {}
    for kind in ("gcp", "aws"):
        args = ["import", kind, "--source", {"gcp": "google", "aws": "amazon"}[kind], "--config", str(cfg)]
        res = runner.invoke(app, [*args, "--out", str(tmp_path / kind)])
        assert res.exit_code == 0, res.output
        want[kind] = load_telemetry(tmp_path / kind).tables
    got = load_telemetry(tmp_path / "landing").tables
    for table, key in (("health_checks", ("service_id", "ts")), ("incidents", ("incident_id",))):
        rows = pa.concat_tables([want["gcp"][table], want["aws"][table]])
        assert _sorted(got[table].select(rows.column_names), key) == _sorted(rows, key), table
    services = got["services"]["service_id"].to_pylist()
    assert sorted(services) == sorted(
        {*want["gcp"]["services"]["service_id"].to_pylist(), *want["aws"]["services"]["service_id"].to_pylist()}
    )
    listed = runner.invoke(app, ["sources", "--config", str(cfg)])
    assert "amazon (aws) -> " in listed.output and "file(s) landed" in listed.output
