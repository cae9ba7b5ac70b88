"""Re-solve after an incident: real flows, real Prefect API, MLflow on SQLite, a copied sample."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from policies.errors import ConfigError
from policies.telemetry.incidents import append_incident_day
from qres_client.bundle import read_latest, verify_bundle

pytestmark = pytest.mark.e2e


def _config(tmp: Path, data: Path) -> Path:
    cfg = tmp / "qres.toml"
    cfg.write_text(
        f'data_dir = "{data}"\nstore_dir = "bundles"\nstate_dir = "state"\nseed = 5\n'
        "[solve]\ntime_limit_s = 1.0\nanneal_num_reads = 4\nanneal_num_sweeps = 100\n"
        "[backtest]\nenabled = false\n"
    )
    return cfg


@pytest.fixture(scope="module")
def after_incident(prefect_harness, small_sample: Path, tmp_path_factory: pytest.TempPathFactory):
    from flows.nightly import nightly
    from flows.resolve import resolve

    tmp = tmp_path_factory.mktemp("resolve")
    data = tmp / "data"
    shutil.copytree(small_sample, data)
    cfg = _config(tmp, data)
    first = nightly(config=str(cfg))
    append_incident_day(data, dependency="saas-maps", incident_id="INC-9001", outage_min=120)
    again = resolve(incident="INC-9001", config=str(cfg))
    return tmp, cfg, first, again


def test_resolve_publishes_a_new_bundle_with_the_incident(after_incident) -> None:
    tmp, _, first, again = after_incident
    assert first["published"] and again["published"]
    assert again["kind"] == "resolve" and again["incidents"] == ["INC-9001"] and again["scope"] == ["saas-maps"]
    assert read_latest(tmp / "bundles", "shedding") == again["bundle_version"] != first["bundle_version"]
    manifest = verify_bundle(Path(again["bundle_path"]))
    assert manifest["inputs"]["snapshot"] != verify_bundle(Path(first["bundle_path"]))["inputs"]["snapshot"]
    # only the new day was validated, and the rest of the scenarios came from the cache
    assert again["rows_validated"] < first["rows_validated"]
    assert 0 <= again["scenarios_solved"] < again["scenarios"]


def test_cached_and_fresh_solves_give_the_same_bytes(after_incident, tmp_path: Path) -> None:
    from flows.resolve import resolve

    tmp, cfg, _, again = after_incident
    state = tmp_path / "fresh-state"
    shutil.copytree(tmp / "state", state, ignore=shutil.ignore_patterns("cache"))
    text = (
        cfg.read_text()
        .replace('state_dir = "state"', f'state_dir = "{state}"')
        .replace('store_dir = "bundles"', f'store_dir = "{tmp_path / "bundles"}"')
    )
    (tmp_path / "qres.toml").write_text(text)
    fresh = resolve(incident="INC-9001", config=str(tmp_path / "qres.toml"))
    # no cache: every distinct problem solved again (equal problems once), more than with the cache
    assert again["scenarios_solved"] < fresh["scenarios_solved"] <= fresh["scenarios"]
    for name in ("decisions.parquet", "policy.json"):
        assert (Path(fresh["bundle_path"]) / name).read_bytes() == (Path(again["bundle_path"]) / name).read_bytes()
    assert _family_files(fresh, tmp_path / "bundles") == _family_files(again, tmp / "bundles")


def _family_files(summary: dict, store: Path) -> dict[str, bytes]:
    """The tier files of the shedding bundle and the standby/routing bundles' decisions, by name."""
    shedding = Path(summary["bundle_path"])
    files = {name: (shedding / name).read_bytes() for name in ("tiers.parquet", "tiers.json")}
    for policy, outcome in summary["families"].items():
        for name in ("decisions.parquet", "policy.json"):
            files[f"{policy}/{name}"] = (store / policy / outcome["stored_version"] / name).read_bytes()
    assert {"standby", "routing"} <= set(summary["families"])
    return files


def test_family_solves_hit_the_cache_and_give_the_same_bytes(after_incident, tmp_path: Path) -> None:
    from flows.resolve import resolve

    tmp, cfg, _, again = after_incident
    state = tmp_path / "warm-state"
    shutil.copytree(tmp / "state", state)  # with the cache the incident re-run filled
    entries = {
        p: p.stat().st_mtime_ns
        for fam in ("tiers", "standby", "routing")
        for p in (state / "cache" / fam).rglob("*.json")
    }
    assert {p.parent.parent.name for p in entries} == {"tiers", "standby", "routing"}
    text = (
        cfg.read_text()
        .replace('state_dir = "state"', f'state_dir = "{state}"')
        .replace('store_dir = "bundles"', f'store_dir = "{tmp_path / "bundles"}"')
    )
    (tmp_path / "qres.toml").write_text(text)
    warm = resolve(incident="INC-9001", config=str(tmp_path / "qres.toml"))
    assert warm["scenarios_solved"] == 0
    # every family answer was read, none solved and written again (a miss rewrites its entry)
    assert {p: p.stat().st_mtime_ns for p in entries} == entries
    assert {p for fam in ("tiers", "standby", "routing") for p in (state / "cache" / fam).rglob("*.json")} == set(
        entries
    )
    assert _family_files(warm, tmp_path / "bundles") == _family_files(again, tmp / "bundles")


def test_routing_keeps_the_nightly_latency_profiles_unless_told_otherwise(after_incident, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from flows.resolve import resolve

    tmp, cfg, first, again = after_incident
    client = MlflowClient(again["tracking_uri"])
    nightly_m, resolve_m = (client.get_run(s["mlflow_run_id"]).data.metrics for s in (first, again))
    # each scenario's LP covers the services it touches; equal LPs are solved once
    assert nightly_m["routing.solved"] == nightly_m["routing.distinct"] > 0
    assert nightly_m["routing.distinct"] <= nightly_m["routing.restricted"] <= nightly_m["routing.scenarios"]
    # same profiles: only the routing scenarios the incident changed are solved again
    assert resolve_m["routing.solved"] < resolve_m["routing.distinct"]
    state = tmp_path / "state"
    shutil.copytree(tmp / "state", state)
    text = (
        cfg.read_text()
        .replace('state_dir = "state"', f'state_dir = "{state}"')
        .replace('store_dir = "bundles"', f'store_dir = "{tmp_path / "bundles"}"')
    )
    (tmp_path / "qres.toml").write_text(text + '[orchestration]\nresolve_latencies = "fresh"\n')
    fresh = resolve(incident="INC-9001", config=str(tmp_path / "qres.toml"))
    fresh_m = MlflowClient(fresh["tracking_uri"]).get_run(fresh["mlflow_run_id"]).data.metrics
    assert fresh_m["routing.solved"] == fresh_m["routing.distinct"]  # every profile has the new day: all new


def test_unknown_incident_names_the_file_and_publishes_nothing(after_incident) -> None:
    from flows.resolve import resolve

    tmp, cfg, _, again = after_incident
    with pytest.raises(ConfigError, match="incidents.*INC-404"):
        resolve(incident="INC-404", config=str(cfg))
    assert read_latest(tmp / "bundles", "shedding") == again["bundle_version"]


def test_a_resolve_that_changes_nothing_publishes_nothing_unless_forced(after_incident) -> None:
    """No new data since the last re-solve: identical decisions, so no new versions (issue 21)."""
    from flows.resolve import resolve
    from qres_client.bundle import list_versions

    tmp, cfg, _, again = after_incident
    store = tmp / "bundles"
    before = {p: list_versions(store, p) for p in ("shedding", "standby", "routing")}
    same = resolve(incident="INC-9001", config=str(cfg))
    assert same["unchanged"] and not same["published"]
    assert same["bundle_version"] == read_latest(store, "shedding") == again["bundle_version"]
    assert all(o["unchanged"] and not o["published"] for o in same["families"].values())
    assert {p: list_versions(store, p) for p in before} == before  # nothing stored, LATEST as it was
    forced = resolve(incident="INC-9001", config=str(cfg), force=True)
    assert forced["published"] and read_latest(store, "shedding") == forced["bundle_version"] != again["bundle_version"]
    new = verify_bundle(Path(forced["bundle_path"]))["files"]
    old = verify_bundle(Path(again["bundle_path"]))["files"]
    assert {n: e["sha256"] for n, e in new.items()} == {n: e["sha256"] for n, e in old.items()}
