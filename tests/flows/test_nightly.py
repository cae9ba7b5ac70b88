"""End to end: the real nightly flow, real Prefect API, MLflow on SQLite, real files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from policies.bundle import read_latest, verify_bundle
from policies.client import PolicyClient
from policies.errors import BundleVerificationError, DataValidationError

pytestmark = pytest.mark.e2e


def _config(tmp: Path, data: Path) -> Path:
    from policies.signing import init_keys

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
    from policies.health import health_score, read_health_document

    health = read_health_document((path / "health.json").read_bytes())
    assert len(health["dependencies"]) == 40
    assert 0 < health_score(health, "region-eu-west", "down") < health_score(health, "region-eu-west", "up") <= 1
    prov = manifest["scenarios"]
    assert sum(prov["by_source"].values()) == prov["count"] == first["scenarios"]
    assert {"normal", "single", "fallback"} <= set(prov["by_source"])
    assert first["transitions_removed"] > 0


def test_second_run_is_a_new_version_with_identical_decisions(two_runs) -> None:
    tmp, _, first, second = two_runs
    assert second["bundle_version"] != first["bundle_version"]
    assert read_latest(tmp / "bundles", "shedding") == second["bundle_version"]
    a, b = Path(first["bundle_path"]), Path(second["bundle_path"])
    for name in ("decisions.parquet", "policy.json", "health.json"):
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
    assert artifacts == {"bundle/decisions.parquet", "bundle/policy.json", "bundle/health.json"}
    champion = client.get_model_version_by_alias("qresilience-shedding", "champion")
    assert str(champion.version) == second["model_version"]
    assert str(client.get_model_version_by_alias("qresilience-shedding", "candidate").version) == second["model_version"]


def test_client_answers_from_the_published_bundle(two_runs) -> None:
    tmp, _, _, second = two_runs
    client = PolicyClient(tmp / "bundles", public_keys=tmp / "state" / "keys" / "qres-signing.pub")
    normal = client.decide("shedding")
    assert normal.version == second["bundle_version"] and normal.scenario == "normal"
    table = pq.read_table(Path(second["bundle_path"]) / "decisions.parquet")
    regions = sorted({k for k in table.column("scenario_key").to_pylist() if k.startswith("down=region-")})
    assert regions, "every region is a dependency, so its single outage must be a scenario"
    decision = client.decide("shedding", down=[regions[0].removeprefix("down=")])
    assert decision.scenario == regions[0] and decision.exact
    admitted_normal = sum(a.admit for a in normal.actions)
    admitted_outage = sum(a.admit for a in decision.actions)
    assert admitted_outage < admitted_normal, "losing a region must shed work"
    odd = client.decide("shedding", down=["no-such-service"])
    assert odd.scenario == "fallback:all-down" and not odd.exact


def test_bad_telemetry_fails_closed_and_keeps_the_last_bundle(two_runs, small_sample: Path) -> None:
    import pyarrow as pa

    from flows.nightly import nightly

    tmp, cfg, _, second = two_runs
    bad = tmp / "bad-data"
    shutil.copytree(small_sample, bad)
    services = pq.read_table(bad / "services.parquet")
    kinds = services.column("kind").to_pylist()
    kinds[0] = "mainframe"
    pq.write_table(services.set_column(services.schema.get_field_index("kind"), "kind", pa.array(kinds)),
                   bad / "services.parquet")
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
    pq.write_table(wl.set_column(wl.schema.get_field_index("value_per_hour"), wl.schema.field("value_per_hour"), halved),
                   worse / "workloads.parquet")
    held = nightly(config=str(cfg), data=str(worse))
    assert not held["published"] and not held["promoted"]
    assert [c["name"] for c in held["gates"]["checks"] if not c["passed"]] == ["champion"]
    assert read_latest(tmp / "bundles", "shedding") == second["bundle_version"]
    uri = f"sqlite:///{tmp / 'state' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert str(client.get_model_version_by_alias("qresilience-shedding", "candidate").version) == held["model_version"]
    assert str(client.get_model_version_by_alias("qresilience-shedding", "champion").version) == second["model_version"]
    assert client.get_run(held["mlflow_run_id"]).data.tags["qres.gates"] == "held"
