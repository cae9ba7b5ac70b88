"""PagerDuty and Backstage from files of their public formats and from a loopback server; the HTTP client's refusals."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from flows.cli.app import app
from policies.errors import ConfigError
from policies.telemetry.importers.backstage import BackstageSpec, catalog_tables, fetch_catalog, read_catalog_files
from policies.telemetry.importers.http import ConnectorError, HttpClient, auth_headers
from policies.telemetry.importers.pagerduty import PagerDutySpec, fetch_pagerduty, incident_rows, read_export
from policies.telemetry.importers.spec import parse_sources, parse_time
from tests.policies.importers.stub_http import serve

runner = CliRunner()


def _svc(pid: str, name: str) -> dict:
    return {
        "id": pid,
        "type": "service_reference",
        "summary": name,
        "self": f"https://api.pagerduty.com/services/{pid}",
    }


INCIDENTS = [
    {"id": "Q1AAA", "type": "incident", "incident_number": 101, "title": "Checkout 5xx", "status": "resolved",
     "urgency": "high", "priority": {"id": "PX1", "type": "priority", "summary": "P1"},
     "created_at": "2026-08-12T10:00:00Z", "resolved_at": "2026-08-12T10:45:00Z", "service": _svc("PSVC1", "Checkout API")},
    {"id": "Q1BBB", "type": "incident", "incident_number": 102, "title": "Maps slow", "status": "resolved",
     "urgency": "low", "priority": None, "created_at": "2026-08-13T08:00:00Z",
     "last_status_change_at": "2026-08-13T09:30:00Z", "service": _svc("PSVC2", "Maps")},
    {"id": "Q1CCC", "type": "incident", "incident_number": 103, "title": "Payments down", "status": "triggered",
     "urgency": "high", "priority": {"id": "PX3", "type": "priority", "summary": "P3"},
     "created_at": "2026-08-14T01:00:00Z", "resolved_at": None, "service": _svc("PSVC3", "Payments DB")},
    {"id": "Q1DDD", "type": "incident", "incident_number": 104, "title": "Checkout again", "status": "acknowledged",
     "urgency": "high", "created_at": "2026-08-14T02:00:00+02:00", "service": _svc("PSVC1", "Checkout API")},
    {"id": "Q1EEE", "type": "incident", "incident_number": 105, "title": "Search errors", "status": "resolved",
     "urgency": "low", "priority": {"summary": "P2"}, "created_at": "2026-08-15T12:00:00Z",
     "resolved_at": "2026-08-15T12:10:00Z", "service": _svc("PSVC4", "Search")},
]  # fmt: skip


def _page(items: list[dict], offset: int, limit: int) -> dict:
    chunk = items[offset : offset + limit]
    return {"incidents": chunk, "limit": limit, "offset": offset, "more": offset + limit < len(items), "total": None}


def test_pagerduty_export_maps_times_severity_and_services(tmp_path: Path) -> None:
    export = tmp_path / "incidents.json"
    export.write_text(json.dumps(_page(INCIDENTS, 0, 100)))
    spec = PagerDutySpec(service_map={"PSVC3": "payments-db"})
    rows = {r["incident_id"]: r for r in incident_rows(spec, read_export(export)).to_pylist()}
    assert rows["Q1AAA"]["severity"] == 1 and rows["Q1AAA"]["affected"] == ["checkout-api"]
    assert (rows["Q1AAA"]["resolved_at"] - rows["Q1AAA"]["started_at"]).total_seconds() == 45 * 60
    assert rows["Q1BBB"]["severity"] == 3 and rows["Q1BBB"]["resolved_at"].hour == 9  # last_status_change_at
    assert rows["Q1CCC"]["resolved_at"] is None and rows["Q1CCC"]["affected"] == ["payments-db"]
    assert rows["Q1DDD"]["started_at"].hour == 0 and rows["Q1DDD"]["severity"] == 2  # +02:00 to UTC; urgency high
    assert rows["Q1EEE"]["severity"] == 2
    res = runner.invoke(app, ["import", "pagerduty", str(export), "--out", str(tmp_path / "tel")])
    assert res.exit_code == 0, res.output
    assert pq.read_table(tmp_path / "tel" / "incidents.parquet").num_rows == 5
    again = runner.invoke(app, ["import", "pagerduty", str(export), "--out", str(tmp_path / "tel")])
    assert again.exit_code == 1 and "--replace" in " ".join(again.output.split())


def test_pagerduty_live_api_pages_waits_on_429_and_refuses_401(tmp_path: Path, monkeypatch) -> None:
    calls = {"n": 0}

    def route(path: str, q: dict, headers: dict):
        calls["n"] += 1
        if headers.get("Authorization") != "Token token=s3cret-token":
            return 401, {}, {"error": {"message": "Unauthorized", "code": 2006}}
        if calls["n"] == 2:
            return 429, {"Retry-After": "0"}, {"error": {"message": "Rate Limit Exceeded", "code": 2020}}
        assert path == "/incidents" and q["time_zone"] == "UTC"
        return 200, {}, _page(INCIDENTS, int(q.get("offset", 0)), int(q["limit"]))

    with serve(route) as (url, seen):
        spec = PagerDutySpec(url=url, page_limit=2)
        monkeypatch.setenv("PAGERDUTY_TOKEN", "s3cret-token")
        got, requests = fetch_pagerduty(spec, parse_time("2026-08-01"), None)
        assert [i["id"] for i in got] == [i["id"] for i in INCIDENTS]
        assert requests == 4 == len(seen)  # 3 pages + one 429 retried
        assert [s["query"]["offset"] for s in seen] == ["0", "2", "2", "4"]
        assert seen[0]["query"]["since"] == "2026-08-01T00:00:00Z"
        res = runner.invoke(app, ["import", "pagerduty", "--url", url, "--out", str(tmp_path / "tel")])
        assert res.exit_code == 0, res.output
        monkeypatch.setenv("PAGERDUTY_TOKEN", "wrong-token-value")
        bad = runner.invoke(app, ["import", "pagerduty", "--url", url, "--out", str(tmp_path / "bad")])
    line = " ".join(bad.output.split())  # the console wraps long lines
    assert bad.exit_code == 1 and "refused the credentials (HTTP 401); check $PAGERDUTY_TOKEN" in line
    assert "wrong-token-value" not in bad.output and not (tmp_path / "bad").exists()
    table = pq.read_table(tmp_path / "tel" / "incidents.parquet")
    assert table.num_rows == 5


CATALOG = """\
apiVersion: backstage.io/v1alpha1
kind: System
metadata: {name: shop, annotations: {qresilience.io/tier: "0"}}
spec: {owner: team-shop}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: checkout
  annotations: {qresilience.io/tier: tier-1, qresilience.io/dependency-hard: "resource:payments-db"}
spec:
  type: service
  lifecycle: production
  system: shop
  dependsOn: [resource:payments-db, component:cart, component:maps]
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: cart}
spec: {type: service, lifecycle: experimental, system: shop, dependsOn: ["api:pricing"]}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: maps, labels: {qresilience.io/tier: "2"}}
spec: {type: external, lifecycle: production}
---
apiVersion: backstage.io/v1alpha1
kind: Resource
metadata: {name: payments-db}
spec: {type: database, system: shop}
---
apiVersion: backstage.io/v1alpha1
kind: API
metadata: {name: pricing, annotations: {qresilience.io/dependency-hard: "false"}}
spec: {type: openapi, lifecycle: production, dependsOn: [component:maps]}
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: team-shop}
spec: {type: team}
"""


def _expect_catalog(tables) -> None:
    services = {r["service_id"]: r for r in tables["services"].to_pylist()}
    assert set(services) == {"shop", "checkout", "cart", "maps", "payments-db", "pricing"}  # no Group
    assert services["shop"]["tier"] == 0 and services["checkout"]["tier"] == 1
    assert services["cart"]["tier"] == 3 and services["payments-db"]["tier"] == 2  # lifecycle, then default
    assert services["maps"]["kind"] == "saas" and services["checkout"]["kind"] == "internal"
    deps = {(r["service_id"], r["depends_on"]): r["hard"] for r in tables["dependencies"].to_pylist()}
    assert deps == {
        ("checkout", "payments-db"): True,
        ("checkout", "cart"): False,
        ("checkout", "maps"): False,
        ("checkout", "shop"): False,
        ("cart", "pricing"): True,
        ("cart", "shop"): True,
        ("payments-db", "shop"): True,
        ("pricing", "maps"): False,
    }


def test_backstage_files_and_catalog_api_give_the_same_tables(tmp_path: Path) -> None:
    (tmp_path / "repo" / "shop").mkdir(parents=True)
    (tmp_path / "repo" / "shop" / "catalog-info.yaml").write_text(CATALOG)
    entities = read_catalog_files([tmp_path / "repo"])
    _expect_catalog(catalog_tables(BackstageSpec(), entities))
    res = runner.invoke(app, ["import", "backstage", str(tmp_path / "repo"), "--out", str(tmp_path / "tel")])
    assert res.exit_code == 0, res.output
    _expect_catalog({n: pq.read_table(tmp_path / "tel" / f"{n}.parquet") for n in ("services", "dependencies")})

    def route(path: str, q: dict, headers: dict):
        if headers.get("Authorization") != "Bearer bs-token":
            return 401, {}, {"error": {"name": "AuthenticationError", "message": "Missing credentials"}}
        assert path == "/api/catalog/entities"
        off, lim = int(q["offset"]), int(q["limit"])
        return 200, {}, entities[off : off + lim]

    with serve(route) as (url, seen):
        with pytest.raises(ConnectorError, match="HTTP 401.*BACKSTAGE_TOKEN"):
            fetch_catalog(BackstageSpec(url=url))
        import os

        os.environ["BACKSTAGE_TOKEN"] = "bs-token"
        try:
            got, requests = fetch_catalog(BackstageSpec(url=url, page_limit=3))
        finally:
            del os.environ["BACKSTAGE_TOKEN"]
    assert got == entities and requests == 3  # pages of 3, 3 and 1
    _expect_catalog(catalog_tables(BackstageSpec(), got))


def test_backstage_refuses_a_dangling_dependency_and_a_bad_tier(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(CATALOG.replace("component:maps]", "component:nowhere]", 1))
    with pytest.raises(ConnectorError, match="depends on component:default/nowhere, which is not in the catalog"):
        catalog_tables(BackstageSpec(), read_catalog_files([tmp_path / "c.yaml"]))
    (tmp_path / "c.yaml").write_text(CATALOG.replace('tier: "2"', 'tier: "7"'))
    with pytest.raises(ConnectorError, match="not a tier 0..3"):
        catalog_tables(BackstageSpec(), read_catalog_files([tmp_path / "c.yaml"]))


def test_client_retries_timeouts_and_honours_retry_after() -> None:
    release = threading.Event()
    n = {"i": 0}

    def route(path: str, q: dict, headers: dict):
        n["i"] += 1
        if n["i"] == 1:
            release.wait(timeout=30)  # held until the client gave up on it
        if n["i"] == 2:
            return 503, {"Retry-After": "7"}, {"status": "error", "error": "busy"}
        return 200, {}, {"status": "success", "auth": headers.get("Authorization")}

    waits: list[float] = []
    with serve(route) as (url, _):
        client = HttpClient("prometheus", {}, timeout_s=0.5, retries=3, backoff_s=0.25, sleep=waits.append)
        doc = client.get_json(url + "/api/v1/query_range", {"query": "up"})
        release.set()
    assert doc["status"] == "success" and client.requests == 3 and waits == [0.25, 7.0]


def test_auth_from_environment(monkeypatch) -> None:
    monkeypatch.setenv("PROM_USER", "ops")
    monkeypatch.setenv("PROM_PASS", "pw")
    assert auth_headers("PROM_TOKEN", "PROM_USER", "PROM_PASS") == {"Authorization": "Basic b3BzOnB3"}
    monkeypatch.setenv("PROM_TOKEN", "tok")
    assert auth_headers("PROM_TOKEN", "PROM_USER", "PROM_PASS") == {"Authorization": "Bearer tok"}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"kind": "prometheus"}, "prometheus needs url"),
        ({"kind": "prometheus", "url": "http://p:9090", "stepp": 60}, "unknown key(s) stepp for kind 'prometheus'"),
        ({"kind": "grafana", "url": "http://g"}, "kind must be one of prometheus, pagerduty, backstage"),
        ({"kind": "prometheus", "url": "http://p", "step_s": "fast"}, "step_s: expected a number"),
        ({"kind": "prometheus", "url": "http://p", "since": "yesterday"}, "is not a time; use ISO 8601"),
        ({"kind": "backstage", "tier_annotation": 3}, "tier_annotation: expected a string"),
    ],
)
def test_source_entries_are_validated_with_what_to_fix(entry: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=f"sources.s.*{message.replace('(', '[(]').replace(')', '[)]')}"):
        parse_sources({"s": entry})


def test_a_bad_source_entry_fails_loading_the_config(tmp_path: Path) -> None:
    from flows.settings import load_settings

    cfg = tmp_path / "qres.toml"
    cfg.write_text('[sources.prom]\nkind = "prometheus"\nurl = "http://p:9090"\nalerts = ["ProbeDown"]\n')
    assert load_settings(cfg).sources["prom"]["alerts"] == ["ProbeDown"]
    cfg.write_text('[sources.prom]\nkind = "prometheus"\n')
    with pytest.raises(ConfigError, match="sources.prom: prometheus needs url"):
        load_settings(cfg)


def test_prometheus_401_is_one_line_without_the_secret(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PROMETHEUS_TOKEN", "prom-secret-value")
    with serve(lambda p, q, h: (401, {"WWW-Authenticate": "Bearer"}, b"Unauthorized\n")) as (url, seen):
        res = runner.invoke(app, ["import", "prometheus", "--url", url, "--since", "1h", "--out", str(tmp_path / "o")])
    line = " ".join(res.output.split())
    assert res.exit_code == 1 and "refused the credentials (HTTP 401); set $PROMETHEUS_TOKEN" in line
    assert "prom-secret-value" not in res.output and seen[0]["headers"]["Authorization"] == "Bearer prom-secret-value"
    assert len(seen) == 1 and not (tmp_path / "o").exists()  # no retry on a refused credential


def test_backstage_into_an_imported_folder_keeps_its_other_services(tmp_path: Path) -> None:
    import pyarrow as pa

    from policies.schema import TABLES

    (tmp_path / "tel").mkdir()
    old = [
        {"service_id": "region-imported", "kind": "region", "tier": 0, "capacity": 100.0, "region": None},
        {"service_id": "maps", "kind": "internal", "tier": 3, "capacity": 0.0, "region": None},
    ]
    pq.write_table(pa.Table.from_pylist(old, schema=TABLES["services"]), tmp_path / "tel" / "services.parquet")
    (tmp_path / "catalog-info.yaml").write_text(CATALOG)
    args = ["import", "backstage", str(tmp_path / "catalog-info.yaml"), "--out", str(tmp_path / "tel")]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 1 and "--replace" in " ".join(refused.output.split())
    assert runner.invoke(app, [*args, "--replace"]).exit_code == 0
    services = {r["service_id"]: r for r in pq.read_table(tmp_path / "tel" / "services.parquet").to_pylist()}
    assert services["region-imported"]["capacity"] == 100.0 and services["maps"]["kind"] == "saas"
    assert len(services) == 7


def test_a_pull_landing_folder_is_taken_from_the_config_folder(tmp_path: Path) -> None:
    from flows.settings import load_settings

    cfg = tmp_path / "qres.toml"
    cfg.write_text('[sources.prom]\nkind = "prometheus"\nurl = "http://p:9090"\ninto = "landing"\n')
    assert load_settings(cfg).sources["prom"]["into"] == str(tmp_path.resolve() / "landing")
