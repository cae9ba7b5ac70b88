"""The sample generator: schemas, determinism, consistency of the planted truths."""

from __future__ import annotations

import hashlib
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from policies.schema import STATUSES, TABLES
from policies.telemetry import sample
from policies.telemetry.sample import generate_sample, write_sample

DAYS = 3
MIN_MS = 60_000


@pytest.fixture(scope="module", params=[7, 1234], ids=["seed7", "seed1234"])
def tables(request):
    return generate_sample(request.param, days=DAYS)


@pytest.fixture(scope="module")
def cube(tables):
    """Status codes shaped (minute, service, probe), plus the axis labels."""
    hc = tables["health_checks"]
    services = sorted(tables["services"].column("service_id").to_pylist())
    probes = sorted(set(hc.column("probe").to_pylist()))
    codes = {s: i for i, s in enumerate(STATUSES)}
    st = np.array([codes[s] for s in hc.column("status").to_pylist()], np.int8)
    t0 = hc.column("ts")[0].value
    return st.reshape(-1, len(services), len(probes)), services, probes, t0


def _rows(table):
    return table.to_pylist()


def _minute(ts, t0):
    return (int(ts.timestamp() * 1000) - t0) // MIN_MS


def _sha256_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_public_api_is_explicit():
    assert sample.__all__ == ["generate_sample", "write_sample"]


def test_every_table_matches_its_schema_and_size(tables):
    assert list(tables) == list(TABLES)
    for name, table in tables.items():
        assert table.schema.equals(TABLES[name]), name
    n_services = tables["services"].num_rows
    assert tables["health_checks"].num_rows == DAYS * 1440 * 2 * n_services


def test_health_checks_are_sorted_by_ts_service_probe(tables, cube):
    hc = tables["health_checks"]
    _, services, probes, t0 = cube
    ts = hc.column("ts").cast("int64").to_numpy().reshape(-1, len(services) * len(probes))
    svc = np.array(hc.column("service_id").to_pylist()).reshape(ts.shape)
    probe = np.array(hc.column("probe").to_pylist()).reshape(ts.shape)
    assert (ts == ts[:, :1]).all() and (np.diff(ts[:, 0]) == MIN_MS).all()  # one block per minute
    assert (svc == np.repeat(services, len(probes))).all()  # then by service
    assert (probe == np.tile(probes, len(services))).all()  # then by probe
    assert probes == ["probe-a", "probe-b"]
    assert t0 == np.datetime64("2026-10-01T00:00", "ms").astype(np.int64)


def test_more_probes_and_fewer_days_change_the_row_count():
    t = generate_sample(3, days=1, probes=3)
    assert t["health_checks"].num_rows == 1440 * 3 * t["services"].num_rows
    assert set(t["health_checks"].column("probe").to_pylist()) == {"probe-a", "probe-b", "probe-c"}
    assert t["incidents"].num_rows >= 2  # region and SaaS outage fit in one day


def test_services_have_the_expected_shape(tables):
    rows = _rows(tables["services"])
    by_kind = {k: [r for r in rows if r["kind"] == k] for k in ("region", "saas", "edge", "internal")}
    assert len(rows) == 40 and [len(v) for v in by_kind.values()] == [3, 8, 2, 27]
    regions = {r["service_id"] for r in by_kind["region"]}
    assert sorted(r["capacity"] for r in by_kind["region"]) == [200.0, 400.0, 400.0]
    assert all(r["region"] is None for r in by_kind["region"] + by_kind["saas"])
    assert all(r["region"] in regions for r in by_kind["edge"] + by_kind["internal"])
    assert {r["tier"] for r in rows} <= {0, 1, 2, 3} and all(r["capacity"] > 0 for r in rows)
    homes = {r["region"] for r in by_kind["internal"]}
    assert homes == regions  # every region hosts something


def test_dependencies_reference_services_and_are_acyclic(tables):
    services = {r["service_id"]: r for r in _rows(tables["services"])}
    deps = _rows(tables["dependencies"])
    pairs = [(d["service_id"], d["depends_on"]) for d in deps]
    assert len(pairs) == len(set(pairs))
    assert all(s in services and t in services and s != t for s, t in pairs)
    graph: dict[str, set[str]] = {}
    for s, t in pairs:
        graph.setdefault(s, set()).add(t)
    try:
        list(TopologicalSorter(graph).static_order())
    except CycleError as exc:  # pragma: no cover - the failure message is the point
        pytest.fail(f"dependency cycle: {exc.args[1]}")
    hard = {(d["service_id"], d["depends_on"]) for d in deps if d["hard"]}
    for sid, row in services.items():
        if row["kind"] == "edge":
            assert (sid, row["region"]) in hard, f"{sid} must hard-depend on its region"
        if row["kind"] == "internal":
            assert (sid, row["region"]) in set(pairs), f"{sid} must depend on its home region"
        if row["kind"] == "internal":
            kinds = {services[t]["kind"] for s, t in pairs if s == sid}
            assert "saas" in kinds, f"{sid} uses no SaaS"
    assert any(services[t]["kind"] == "internal" for s, t in hard if services[s]["kind"] == "internal")
    internal = [sid for sid, r in services.items() if r["kind"] == "internal"]
    pinned = [sid for sid in internal if (sid, services[sid]["region"]) in hard]
    assert 0 < len(pinned) < len(internal), "some services are pinned to a region, most run active-active"


def test_health_check_metrics_match_status(tables):
    hc = tables["health_checks"]
    st = np.array(hc.column("status").to_pylist())
    lat = hc.column("latency_ms").to_numpy(zero_copy_only=False)
    err = hc.column("error_rate").to_numpy()
    code = hc.column("http_code").to_numpy(zero_copy_only=False)
    assert set(np.unique(st)) == set(STATUSES)
    assert np.array_equal(np.isnan(lat), st == "down")  # null latency exactly when down
    assert (lat[st != "down"] > 0).all()
    assert ((err >= 0) & (err <= 1)).all()
    assert err[st == "down"].mean() > 0.6 > 0.05 > err[st == "up"].mean()
    assert (code[st == "up"] == 200).all()
    assert set(code[st == "degraded"]) <= {200.0, 429.0, 503.0}
    down_codes = code[st == "down"]
    assert set(down_codes[~np.isnan(down_codes)]) <= {502.0, 503.0, 504.0} and np.isnan(down_codes).any()
    assert np.median(lat[st == "degraded"]) > 2 * np.median(lat[st == "up"])


def test_incidents_line_up_with_down_checks(tables, cube):
    status, services, _, t0 = cube
    col = {s: j for j, s in enumerate(services)}
    incidents = _rows(tables["incidents"])
    assert incidents and [i["incident_id"] for i in incidents] == [f"INC-{k:04d}" for k in range(1, len(incidents) + 1)]
    covered = np.zeros(status.shape[:2], bool)
    for inc in incidents:
        a, b = _minute(inc["started_at"], t0), _minute(inc["resolved_at"], t0)
        assert 4 <= b - a and inc["severity"] in (1, 2, 3, 4) and inc["summary"]
        for s in inc["affected"]:
            window = status[a:b, col[s], :]
            assert (window == 2).any(axis=1).mean() >= 0.6, (inc["incident_id"], s)
            assert (window == 2).all(axis=1).mean() >= 0.5, (inc["incident_id"], s)  # seen by every probe
            covered[max(0, a - 2) : b + 2, col[s]] = True
    # Conversely, every minute where all probes agree a service is down belongs to an incident.
    agreed_down = (status == 2).all(axis=2)
    assert not (agreed_down & ~covered).any()


def test_region_outage_downs_pinned_services_and_degrades_the_rest(tables, cube):
    status, services, _, t0 = cube
    rows = _rows(tables["services"])
    deps = _rows(tables["dependencies"])
    [inc] = [i for i in _rows(tables["incidents"]) if i["severity"] == 1]
    region = inc["affected"][0]
    closure = {region}
    while True:  # everything that hard-depends on the region, directly or not
        more = {d["service_id"] for d in deps if d["hard"] and d["depends_on"] in closure} - closure
        if not more:
            break
        closure |= more
    hosted = {r["service_id"] for r in rows if r["region"] == region}
    soft_hosted = {
        s for s in hosted if s not in closure and {d["depends_on"] for d in deps if d["service_id"] == s} & {region}
    }
    assert region.startswith("region-") and set(inc["affected"]) == closure
    assert closure - {region} or soft_hosted, "a region outage must hit what runs there"
    a, b = _minute(inc["started_at"], t0), _minute(inc["resolved_at"], t0)
    assert 40 <= b - a <= 92
    for s in closure:
        assert (status[a + 2 : b - 2, services.index(s), :] == 2).all(), s
    for s in soft_hosted:
        assert (status[a + 2 : b - 2, services.index(s), :] >= 1).all(), s


def test_saas_outage_downs_hard_and_degrades_soft_dependents(tables, cube):
    status, services, _, t0 = cube
    [inc] = [
        i
        for i in _rows(tables["incidents"])
        if i["affected"][0] in ("saas-invoice-validation", "saas-payments")
        and i["severity"] == 2
        and i["summary"].startswith("SaaS")
    ]
    root, a, b = inc["affected"][0], _minute(inc["started_at"], t0), _minute(inc["resolved_at"], t0)
    deps = _rows(tables["dependencies"])
    hard = {d["service_id"] for d in deps if d["depends_on"] == root and d["hard"]}
    soft = {d["service_id"] for d in deps if d["depends_on"] == root and not d["hard"]}
    assert hard and hard <= set(inc["affected"])
    for s in soft - set(inc["affected"]):
        assert (status[a + 2 : b - 2, services.index(s), :] >= 1).all(), s


def test_flapping_blips_and_quiet_services_exist(tables, cube):
    status, services, _, t0 = cube
    bad = status > 0
    others_up = bad.sum(axis=2, keepdims=True) == bad  # no other probe is bad in that minute
    alone = np.zeros_like(bad)
    alone[1:-1] = bad[1:-1] & ~bad[:-2] & ~bad[2:]  # one minute on that probe only
    blips = (alone & others_up).sum(axis=(0, 2))
    flappy = [s for s, n in zip(services, blips) if n >= 3]
    assert len(flappy) >= 2, dict(zip(services, blips))
    ever_down = (status == 2).all(axis=2).any(axis=0)
    assert (~ever_down).sum() >= 3  # some services never have a real outage


def test_workloads_are_consistent_with_services_and_capacity(tables):
    services = {r["service_id"]: r for r in _rows(tables["services"])}
    deps = {(d["service_id"], d["depends_on"]): d["hard"] for d in _rows(tables["dependencies"])}
    wls = _rows(tables["workloads"])
    assert 50 <= len(wls) <= 70 and len({w["workload_id"] for w in wls}) == len(wls)
    caps = {s: r["capacity"] for s, r in services.items() if r["kind"] == "region"}
    total = sum(w["demand"] for w in wls)
    assert 0.8 <= total / sum(caps.values()) <= 0.9
    # Losing a large region must force shedding among the workloads that survive it.
    forced = []
    for region, cap in caps.items():
        down = {region}
        while more := {s for (s, d), h in deps.items() if h and d in down} - down:
            down |= more
        surviving = sum(w["demand"] for w in wls if w["service_id"] not in down and not set(w["requires"]) & down)
        forced.append(surviving > sum(caps.values()) - cap)
    assert any(forced)
    values = [w["value_per_hour"] for w in wls]
    assert min(values) > 0 and max(values) / min(values) > 100
    for w in wls:
        s = w["service_id"]
        assert services[s]["kind"] == "internal" and w["demand"] > 0 and w["tier"] in (0, 1, 2, 3)
        assert all(d in w["requires"] for (x, d), h in deps.items() if x == s and h)
        assert all((s, d) in deps for d in w["requires"])
        for risk in w["risks"]:
            assert deps.get((s, risk["depends_on"])) is False and risk["depends_on"] not in w["requires"]
            assert risk["cost_per_hour"] > 0
        assert 0 <= w["min_share"] <= 1
        assert w["min_share"] == 0 or (w["tier"] == 0 and 0.25 <= w["min_share"] <= 0.5)
    floors = sum(w["min_share"] * w["demand"] for w in wls if w["tier"] == 0)
    assert 0 < floors <= 0.5 * (sum(caps.values()) - max(caps.values()))


def test_sites_and_standby_candidates_reference_what_exists(tables):
    services = {r["service_id"]: r["kind"] for r in _rows(tables["services"])}
    sites = _rows(tables["sites"])
    site_ids = {s["site_id"] for s in sites}
    assert 4 <= len(sites) <= 6 and all(s["budget"] > 0 for s in sites)
    assert all(s["region"] is None or services.get(s["region"]) == "region" for s in sites)
    assert any(s["region"] is None for s in sites)
    cands = _rows(tables["standby_candidates"])
    assert len(cands) == 30 and len({c["candidate_id"] for c in cands}) == 30
    assert len({(c["service_id"], c["site_id"]) for c in cands}) == 30
    for c in cands:
        assert services.get(c["service_id"]) not in (None, "region") and c["site_id"] in site_ids
        assert c["cost"] > 0 and 0 < c["coverage"] <= 1


def test_different_seeds_give_different_samples():
    a, b = generate_sample(1, days=1), generate_sample(2, days=1)
    assert not a["dependencies"].equals(b["dependencies"])
    assert not a["health_checks"].equals(b["health_checks"])


def test_write_sample_is_byte_identical_for_a_seed(tmp_path):
    paths = write_sample(tmp_path / "a", seed=5, days=2)
    write_sample(tmp_path / "b", seed=5, days=2)
    write_sample(tmp_path / "c", seed=6, days=2)
    assert [p.name for p in paths["health_checks"]] == ["2026-10-01.parquet", "2026-10-02.parquet"]
    assert all(p.parent == tmp_path / "a" for n, ps in paths.items() if n != "health_checks" for p in ps)
    a, b, c = (_sha256_tree(tmp_path / x) for x in "abc")
    assert len(a) == 6 + 2 and a == b
    hc = [k for k in a if k.startswith("health_checks")]
    assert all(a[k] != c[k] for k in hc)
    # Nothing time-varying hides in the footer, and the day files read back as the table.
    for p in paths["health_checks"]:
        meta = pq.ParquetFile(p).metadata
        assert set(meta.metadata) == {b"ARROW:schema"} and meta.num_rows == 1440 * 2 * 40
    back = pq.read_table(tmp_path / "a" / "health_checks")
    assert back.num_rows == 2 * 1440 * 2 * 40 and back.schema.equals(TABLES["health_checks"])
    assert pq.read_table(paths["incidents"][0]).schema.equals(TABLES["incidents"])


def test_write_sample_refuses_to_overwrite(tmp_path):
    write_sample(tmp_path, seed=5, days=1)
    before = _sha256_tree(tmp_path)
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        write_sample(tmp_path, seed=6, days=1)
    assert _sha256_tree(tmp_path) == before


def test_write_sample_refuses_to_mix_into_a_partition_folder(tmp_path):
    (tmp_path / "health_checks").mkdir()
    (tmp_path / "health_checks" / "2026-09-30.parquet").write_bytes(b"older day")
    with pytest.raises(FileExistsError, match="2026-09-30"):
        write_sample(tmp_path, seed=5, days=1)
    assert [p.name for p in tmp_path.rglob("*")] == ["health_checks", "2026-09-30.parquet"]


def test_write_sample_refuses_before_writing_anything(tmp_path):
    (tmp_path / "workloads.parquet").write_bytes(b"someone's data")
    with pytest.raises(FileExistsError, match="workloads.parquet"):
        write_sample(tmp_path, seed=5, days=1)
    assert [p.name for p in tmp_path.iterdir()] == ["workloads.parquet"]
    assert (tmp_path / "workloads.parquet").read_bytes() == b"someone's data"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"days": 0}, "days"),
        ({"probes": 0}, "probes"),
        ({"start": "2026-10-01T06:00"}, "midnight"),
    ],
)
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_sample(7, **kwargs)


def test_full_month_sample():
    t = generate_sample()
    assert t["health_checks"].num_rows == 30 * 1440 * 2 * 40 == 3_456_000
    incidents = _rows(t["incidents"])
    assert len(incidents) >= 8 and sum(i["severity"] == 1 for i in incidents) == 1
    assert all(i["resolved_at"] >= i["started_at"] for i in incidents)
    assert sum(i["affected"][0].startswith("saas-") for i in incidents) >= 2  # big SaaS outage + a small one
