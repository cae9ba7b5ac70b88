"""End to end: the real nightly flow, real Prefect API, MLflow on SQLite, real files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from policies.errors import BundleVerificationError, DataValidationError
from qres_client.bundle import read_latest, verify_bundle
from qres_client.client import PolicyClient
from qres_client.names import UnknownDependencyWarning

pytestmark = pytest.mark.e2e


def _config(tmp: Path, data: Path) -> Path:
    from qres_client.signing import init_keys

    init_keys(tmp / "state" / "keys")  # as `make run` does: nightly signs with <state_dir>/keys
    cfg = tmp / "qres.toml"
    cfg.write_text(
        f'data_dir = "{data}"\nstore_dir = "bundles"\nstate_dir = "state"\nseed = 5\n'
        "[solve]\ntime_limit_s = 1.0\nanneal_num_reads = 4\nanneal_num_sweeps = 100\n"
    )
    return cfg


@pytest.fixture(scope="module")
def two_runs(prefect_harness, small_sample: Path, tmp_path_factory: pytest.TempPathFactory):
    from flows.nightly import nightly

    tmp = tmp_path_factory.mktemp("nightly")
    cfg = _config(tmp, small_sample)
    first = nightly(config=str(cfg))
    second = nightly(config=str(cfg))
    return tmp, cfg, first, second


def test_run_publishes_a_verified_bundle(two_runs) -> None:
    tmp, _, first, _ = two_runs
    assert first["published"] and first["promoted"]
    path = Path(first["bundle_path"])
    assert path.parent == tmp / "bundles" / "shedding"
    manifest = verify_bundle(path)
    assert manifest["mlflow_run_id"] == first["mlflow_run_id"]
    assert manifest["seed"] == 5
    assert set(manifest["inputs"]["sha256"]) >= {"services", "health_checks", "workloads"}
    assert first["rows_validated"] == sum(first["tables"].values())
    assert first["scenarios"] >= first["dependencies_with_outages"]
    assert 0 < first["covered_mass"] <= 1
    # The failure model's outputs travel with the bundle: health-score parameters and where
    # every scenario came from.
    from qres_client.health import health_score, read_health_document

    health = read_health_document((path / "health.json").read_bytes())
    assert len(health["dependencies"]) == 40
    assert 0 < health_score(health, "region-eu-west", "down") < health_score(health, "region-eu-west", "up") <= 1
    prov = manifest["scenarios"]
    assert sum(prov["by_source"].values()) == prov["count"] == first["scenarios"]
    assert {"normal", "empirical", "fallback"} <= set(prov["by_source"])  # by coverage: no unobserved single
    assert "single" not in prov["by_source"]
    assert first["transitions_removed"] > 0


def test_second_run_is_a_new_version_with_identical_decisions(two_runs) -> None:
    tmp, _, first, second = two_runs
    assert second["bundle_version"] != first["bundle_version"]
    assert read_latest(tmp / "bundles", "shedding") == second["bundle_version"]
    a, b = Path(first["bundle_path"]), Path(second["bundle_path"])
    for name in ("decisions.parquet", "policy.json", "health.json", "fallback.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), f"{name} differs between identical runs"


def test_mlflow_has_the_run_and_the_aliases(two_runs) -> None:
    from mlflow import MlflowClient

    tmp, _, first, second = two_runs
    uri = f"sqlite:///{tmp / 'state' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run = client.get_run(first["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["seed"] == "5"
    assert "version.ortools" in run.data.params
    assert run.data.metrics["shedding.expected_value_per_h"] == pytest.approx(first["expected_value_per_h"])
    assert {d.dataset.name for d in run.inputs.dataset_inputs} >= {"services", "health_checks"}
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "bundle")}
    assert artifacts == {
        "bundle/decisions.parquet",
        "bundle/policy.json",
        "bundle/health.json",
        "bundle/fallback.json",
        "bundle/tiers.parquet",
        "bundle/tiers.json",
    }
    docs = {a.path for a in client.list_artifacts(run.info.run_id, "data_docs")}
    assert {"data_docs/index.html", "data_docs/validation.json"} <= docs
    champion = client.get_model_version_by_alias("qresilience-shedding", "champion")
    assert str(champion.version) == second["model_version"]
    assert (
        str(client.get_model_version_by_alias("qresilience-shedding", "candidate").version) == second["model_version"]
    )


def test_backtest_and_report_are_logged_to_mlflow(two_runs) -> None:
    from mlflow import MlflowClient

    tmp, _, first, _ = two_runs
    uri = f"sqlite:///{tmp / 'state' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run_id = first["mlflow_run_id"]
    metrics = client.get_run(run_id).data.metrics
    assert "backtest.incidents" in metrics  # two days of sample: the held-out part may hold no incident
    if metrics["backtest.incidents"] > 0:
        assert 0.0 <= metrics["backtest.share.published"] <= 1.0 + 1e-9
    assert {a.path for a in client.list_artifacts(run_id, "report")} >= {"report/report.html"}
    assert "reports/backtest.json" in {a.path for a in client.list_artifacts(run_id, "reports")}
    page = Path(client.download_artifacts(run_id, "report/report.html", str(tmp / "dl"))).read_text()
    for heading in ("Shedding policy", "Tier assignment", "Standby placement", "Routing weights"):
        assert heading in page, f"the report lacks its {heading!r} section"


def test_client_answers_from_the_published_bundle(two_runs) -> None:
    tmp, _, _, second = two_runs
    client = PolicyClient(tmp / "bundles", public_keys=tmp / "state" / "keys" / "qres-signing.pub")
    normal = client.decide("shedding")
    assert normal.version == second["bundle_version"] and normal.scenario == "normal"
    table = pq.read_table(Path(second["bundle_path"]) / "decisions.parquet")
    regions = sorted({k for k in table.column("scenario_key").to_pylist() if k.startswith("down=region-")})
    assert regions, "the sample's region outages were observed, so each is a scenario (by coverage)"
    decision = client.decide("shedding", down=regions[0].removeprefix("down=").split(","))
    assert decision.scenario == regions[0] and decision.exact
    admitted_normal = sum(a.admit for a in normal.actions)
    admitted_outage = sum(a.admit for a in decision.actions)
    assert admitted_outage < admitted_normal, "losing a region must shed work"
    # A state no scenario names: the runtime greedy plans it from the bundle's fallback.json
    # (an unknown service blocks nothing, so it admits what it would in normal times) ...
    with pytest.warns(UnknownDependencyWarning, match="no-such-service"):  # a typo is never silently "all fine"
        odd = client.decide("shedding", down=["no-such-service"])
    assert odd.scenario == "greedy:observed" and not odd.exact
    assert sum(a.admit for a in odd.actions) > admitted_outage
    # ... and the old rule (closest cover, else admit nothing) is one option away.
    old = PolicyClient(tmp / "bundles", public_keys=tmp / "state" / "keys" / "qres-signing.pub", unmatched="cover")
    with pytest.warns(UnknownDependencyWarning):
        assert old.decide("shedding", down=["no-such-service"]).scenario == "fallback:all-down"


FAMILIES = ("standby", "routing")


def test_every_family_is_published_verified_and_deterministic(two_runs) -> None:
    tmp, _, first, second = two_runs
    assert set(first["families"]) == set(FAMILIES)
    for family in FAMILIES:
        a, b = first["families"][family], second["families"][family]
        assert a["published"] and a["promoted"] and b["published"], (family, a["gates"])
        assert Path(b["bundle_path"]).parent == tmp / "bundles" / family
        assert read_latest(tmp / "bundles", family) == b["stored_version"] != a["stored_version"]
        manifest = verify_bundle(Path(b["bundle_path"]))
        assert manifest["signatures"] and manifest["mlflow_run_id"] == second["mlflow_run_id"]
        assert manifest["mlflow_model"]["name"] == f"qresilience-{family}" and manifest["seed"] == 5
        assert manifest["scenarios"]["count"] == second["scenarios"]
        assert [c["name"] for c in manifest["gates"]["checks"]] == ["validation", "feasible", "gap", "champion"]
        for name in ("decisions.parquet", "policy.json"):
            assert (Path(a["bundle_path"]) / name).read_bytes() == (Path(b["bundle_path"]) / name).read_bytes(), (
                f"{family}/{name} differs between identical runs"
            )
    # The tier assignment travels inside the shedding bundle, also byte-identical across runs.
    sa, sb = Path(first["bundle_path"]), Path(second["bundle_path"])
    for name in ("tiers.parquet", "tiers.json"):
        assert (sa / name).read_bytes() == (sb / name).read_bytes(), f"shedding/{name} differs between identical runs"
    tiers = pq.read_table(sb / "tiers.parquet").to_pylist()
    assert {t["criticality"] for t in tiers} <= {"CRITICAL_PLUS", "CRITICAL", "SHEDDABLE_PLUS", "SHEDDABLE"}
    workloads = set(pq.read_table(sb / "decisions.parquet", columns=["workload_id"]).column(0).to_pylist())
    assert [t["workload_id"] for t in tiers] == sorted(workloads), "one tier per workload"


def test_mlflow_registers_each_family(two_runs) -> None:
    from mlflow import MlflowClient

    tmp, _, first, second = two_runs
    uri = f"sqlite:///{tmp / 'state' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run = client.get_run(second["mlflow_run_id"])
    assert run.data.metrics["standby.expected_covered_per_h"] == pytest.approx(
        second["families"]["standby"]["expected_value"]
    )
    assert "routing.expected_objective_ms" in run.data.metrics and "tiers.cvar_loss_per_h" in run.data.metrics
    for family in FAMILIES:
        name = f"qresilience-{family}"
        assert (
            str(client.get_model_version_by_alias(name, "champion").version)
            == second["families"][family]["model_version"]
        )
        assert run.data.tags[f"qres.{family}.gates"] == "passed"
        files = {a.path for a in client.list_artifacts(run.info.run_id, f"bundle-{family}")}
        assert files == {f"bundle-{family}/decisions.parquet", f"bundle-{family}/policy.json"}


def test_client_answers_for_every_family(two_runs) -> None:
    tmp, _, _, second = two_runs
    client = PolicyClient(tmp / "bundles", public_keys=tmp / "state" / "keys" / "qres-signing.pub")
    assert client.versions == {
        "shedding": second["bundle_version"],
        **{f: second["families"][f]["stored_version"] for f in FAMILIES},
    }
    table = pq.read_table(Path(second["bundle_path"]) / "decisions.parquet")
    region = sorted({k for k in table.column("scenario_key").to_pylist() if k.startswith("down=region-")})[0]
    down = region.removeprefix("down=").split(",")  # an observed region outage (maybe with others)
    # standby: per scenario the chosen standbys, admit 1.0 = activate; never one at a site that is down.
    normal, outage = client.decide("standby"), client.decide("standby", down=down)
    assert outage.scenario == region and outage.exact and normal.scenario == "normal"
    assert {a.workload_id for a in normal.actions} == {a.workload_id for a in outage.actions}
    assert all(a.admit == 0.0 for a in normal.actions), "nothing is down: no standby activated"
    for a in outage.actions:
        assert set(a.extras) == {"service_id", "site_id", "value_per_hour"}
        assert a.admit in (0.0, 1.0) and (a.admit == 0.0 or a.extras["value_per_hour"] >= 0)
    # routing: per service, weights over its endpoints sum to at most 1 (the rest is unserved, penalised);
    # the region that is down gets none.
    routed = client.decide("routing", down=down)
    assert routed.scenario == region and routed.exact
    by_service: dict[str, float] = {}
    for a in routed.actions:
        assert set(a.extras) == {"service_id", "locality", "envoy_weight", "healthy"}
        by_service[a.extras["service_id"]] = by_service.get(a.extras["service_id"], 0.0) + a.admit
        if a.extras["locality"] in down:
            assert a.admit == 0.0 and not a.extras["healthy"] and a.extras["envoy_weight"] == 0
        else:
            assert a.extras["healthy"] == (a.extras["envoy_weight"] >= 1)
    assert by_service and all(0.0 <= v <= 1.0 + 1e-9 for v in by_service.values())
    assert sum(by_service.values()) > 0.5 * len(by_service), "most traffic must still be routed"
    with pytest.warns(UnknownDependencyWarning):
        assert client.decide("routing", down=["no-such-service"]).scenario == "fallback:all-down"


def test_bad_telemetry_fails_closed_and_keeps_the_last_bundle(two_runs, small_sample: Path) -> None:
    import pyarrow as pa

    from flows.nightly import nightly

    tmp, cfg, _, second = two_runs
    bad = tmp / "bad-data"
    shutil.copytree(small_sample, bad)
    services = pq.read_table(bad / "services.parquet")
    kinds = services.column("kind").to_pylist()
    kinds[0] = "mainframe"
    pq.write_table(
        services.set_column(services.schema.get_field_index("kind"), "kind", pa.array(kinds)), bad / "services.parquet"
    )
    before = sorted(p.name for p in (tmp / "bundles" / "shedding").iterdir())
    with pytest.raises(DataValidationError) as err:
        nightly(config=str(cfg), data=str(bad))
    msg = str(err.value)
    assert "services" in msg and "kind" in msg and "mainframe" in msg and "services.parquet" in msg
    assert sorted(p.name for p in (tmp / "bundles" / "shedding").iterdir()) == before
    assert read_latest(tmp / "bundles", "shedding") == second["bundle_version"]


def test_tampered_bundle_is_refused(two_runs) -> None:
    tmp, _, _, second = two_runs
    copy = tmp / "tampered"
    shutil.copytree(tmp / "bundles", copy)
    target = copy / "shedding" / second["bundle_version"] / "decisions.parquet"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(BundleVerificationError, match="decisions.parquet"):
        verify_bundle(target.parent)
    with pytest.raises(BundleVerificationError):
        PolicyClient(copy)


def test_gates_hold_back_a_much_worse_policy(two_runs, small_sample: Path) -> None:
    import pyarrow as pa
    from mlflow import MlflowClient

    from flows.nightly import nightly

    tmp, cfg, _, second = two_runs
    worse = tmp / "worse-data"
    shutil.copytree(small_sample, worse)
    wl = pq.read_table(worse / "workloads.parquet")
    halved = pa.array([v * 0.5 for v in wl.column("value_per_hour").to_pylist()], pa.float64())
    pq.write_table(
        wl.set_column(wl.schema.get_field_index("value_per_hour"), wl.schema.field("value_per_hour"), halved),
        worse / "workloads.parquet",
    )
    held = nightly(config=str(cfg), data=str(worse))
    assert not held["published"] and not held["promoted"]
    assert [c["name"] for c in held["gates"]["checks"] if not c["passed"]] == ["champion"]
    assert read_latest(tmp / "bundles", "shedding") == second["bundle_version"]
    uri = f"sqlite:///{tmp / 'state' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert str(client.get_model_version_by_alias("qresilience-shedding", "candidate").version) == held["model_version"]
    assert str(client.get_model_version_by_alias("qresilience-shedding", "champion").version) == second["model_version"]
    assert client.get_run(held["mlflow_run_id"]).data.tags["qres.gates"] == "held"


def test_a_drill_plays_a_scenario_of_the_nightly_bundle(two_runs) -> None:
    """`qres drill --scenario` on what a real nightly published: every rule reads the real bundle's files."""
    import json

    from typer.testing import CliRunner

    from flows.cli.app import app
    from policies.drill.system import DEFAULT_SYSTEM
    from tasks.drill.sources import drillable, published_bundle

    tmp, cfg, _, second = two_runs
    keys = drillable(published_bundle(tmp / "bundles"), DEFAULT_SYSTEM)
    assert keys, "the sample's nightly has no scenario touching the drill's dependencies"
    args = ["drill", "--config", str(cfg), "--scenario", keys[0], "--seeds", "2", "--duration", "4", "--rate", "4"]
    res = CliRunner().invoke(app, [*args, "--policies", "tiers,greedy,published", "--no-record", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["source"] == f"scenario:{keys[0]}" and doc["bundle_version"] == second["bundle_version"]
    for policy in ("tiers", "greedy", "published"):
        assert doc["summary"][policy]["invoices"]["mean"] > 0
        assert doc["decisions"]["2"][policy][0] == "normal"
