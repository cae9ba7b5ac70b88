"""Versions end to end: pyfunc from the registry, `mlflow models serve`, promote, rollback, replay, keys."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli.app import app
from qres_client.bundle import read_latest, verify_bundle
from qres_client.client import PolicyClient
from tests.waits import WAIT_S

pytestmark = pytest.mark.e2e
runner = CliRunner()
MODEL = "qresilience-shedding"


@pytest.fixture(scope="module")
def project(prefect_harness, small_sample: Path, tmp_path_factory: pytest.TempPathFactory):
    """Two signed nightly runs in a project folder, as `make run` twice would leave it."""
    from flows.nightly import nightly

    tmp = tmp_path_factory.mktemp("versions")
    cfg = tmp / "qres.toml"
    cfg.write_text(
        f'data_dir = "{small_sample}"\nstore_dir = "bundles"\nstate_dir = "state"\nseed = 5\n'
        "[solve]\ntime_limit_s = 1.0\nanneal_num_reads = 4\nanneal_num_sweeps = 100\n"
        "[bundle]\nkeep_versions = 3\n"
    )
    assert runner.invoke(app, ["keys", "init", "-c", str(cfg)]).exit_code == 0
    runs = [nightly(config=str(cfg)) for _ in range(2)]
    return tmp, cfg, runs


def _mlflow(tmp: Path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp / 'state' / 'mlflow.db'}"
    return uri, MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_keys_init_is_owner_only_and_runs_are_signed(project):
    tmp, cfg, runs = project
    key = tmp / "state" / "keys" / "qres-signing.key"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    manifest = verify_bundle(runs[1]["bundle_path"])
    assert [s["alg"] for s in manifest["signatures"]] == ["ed25519", "ml-dsa-65"]
    again = runner.invoke(app, ["keys", "init", "-c", str(cfg)])
    assert again.exit_code == 1 and "already exists" in again.output
    ok = runner.invoke(app, ["verify", "-c", str(cfg)])
    assert ok.exit_code == 0 and "signatures verified" in ok.output, ok.output


def test_registry_champion_is_a_pyfunc_model_from_code(project, monkeypatch):
    import mlflow.pyfunc
    import pandas as pd

    tmp, _, runs = project
    uri, client = _mlflow(tmp)
    mlflow.set_registry_uri(uri)
    mlflow.set_tracking_uri(uri)
    monkeypatch.setenv("QRES_PUBLIC_KEY_FILE", str(tmp / "state" / "keys" / "qres-signing.pub"))
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    answer = model.predict(pd.DataFrame({"down": [[], "no-such-service"], "degraded": [None, ""]}))
    assert list(answer["scenario"]) == ["normal", "greedy:observed"]  # planned at runtime from fallback.json
    assert set(answer["version"]) == {runs[1]["bundle_version"]}
    expected = PolicyClient(tmp / "bundles", public_keys=tmp / "state" / "keys" / "qres-signing.pub").decide()
    assert answer["actions"][0] == [
        {"rank": a.rank, "workload_id": a.workload_id, "admit": a.admit} for a in expected.actions
    ]
    run = client.get_run(runs[1]["mlflow_run_id"])
    files = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert "model/python_model.pkl" not in files and "model/MLmodel" in files  # code, not a pickle
    shipped = {a.path for a in client.list_artifacts(run.info.run_id, "model/artifacts")}
    assert not any(p.endswith(".pub") for p in shipped), shipped  # no key travels with the model


def test_the_pyfunc_model_trusts_only_the_deployment_key(project, monkeypatch):
    import mlflow.pyfunc

    from qres_client.errors import BundleVerificationError, ConfigError
    from qres_client.signing import SigningKey

    tmp, _, _ = project
    uri, _ = _mlflow(tmp)
    mlflow.set_registry_uri(uri)
    mlflow.set_tracking_uri(uri)
    for name in ("QRES_PUBLIC_KEY", "QRES_PUBLIC_KEY_FILE", "QRES_ALLOW_UNSIGNED"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="no public key"):
        mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    monkeypatch.setenv("QRES_PUBLIC_KEY", SigningKey.generate().public.to_json())  # someone else's key
    with pytest.raises(BundleVerificationError):
        mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mlflow_models_serve_answers(project):
    tmp, _, runs = project
    uri, _ = _mlflow(tmp)
    port = _free_port()
    bindir = str(Path(sys.executable).parent)  # uvicorn lives next to the interpreter
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_REGISTRY_URI": uri,
        "QRES_PUBLIC_KEY_FILE": str(tmp / "state" / "keys" / "qres-signing.pub"),
        "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
    }
    mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
    proc = subprocess.Popen(
        [
            mlflow_bin,
            "models",
            "serve",
            "-m",
            f"models:/{MODEL}@champion",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env=env,
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        body = json.dumps({"dataframe_records": [{"down": "no-such-service", "degraded": ""}]}).encode()
        deadline, reply = time.monotonic() + WAIT_S, None
        while reply is None:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            try:
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(req, timeout=5) as resp:
                    reply = json.loads(resp.read())
            except OSError:
                assert time.monotonic() < deadline, "mlflow models serve did not answer"
                time.sleep(0.5)
    finally:
        proc.kill()
        proc.wait()
    row = reply["predictions"][0]
    assert row["scenario"] == "greedy:observed" and row["version"] == runs[1]["bundle_version"]
    assert row["actions"] and row["actions"][0]["rank"] == 1


def test_promote_and_rollback_move_alias_and_latest_together(project):
    tmp, cfg, runs = project
    _, client = _mlflow(tmp)
    keys = tmp / "state" / "keys" / "qres-signing.pub"
    reader = PolicyClient(tmp / "bundles", public_keys=keys)  # a consumer with rollback protection
    held = reader.versions["shedding"]
    res = runner.invoke(app, ["promote", runs[0]["model_version"], "-c", str(cfg)])
    assert res.exit_code == 0, res.output
    latest = read_latest(tmp / "bundles", "shedding")
    assert latest > held  # an older champion is republished as a new version, never moved backwards
    manifest = verify_bundle(tmp / "bundles" / "shedding" / latest)
    assert manifest["republished_from"] == runs[0]["bundle_version"] and manifest["signatures"]
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == runs[0]["model_version"]
    assert reader.refresh() is True and reader.versions["shedding"] == latest  # clients follow
    older = Path(runs[0]["bundle_path"])
    for name in ("decisions.parquet", "policy.json"):
        assert (older / name).read_bytes() == (tmp / "bundles" / "shedding" / latest / name).read_bytes()

    res = runner.invoke(app, ["rollback", "-c", str(cfg)])  # back to the champion before: run 2
    assert res.exit_code == 0, res.output
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == runs[1]["model_version"]
    assert read_latest(tmp / "bundles", "shedding") > latest and reader.refresh() is True
    # Retention (keep_versions = 3): only the newest three versions are left, LATEST among them.
    stored = sorted(p.name for p in (tmp / "bundles" / "shedding").iterdir() if p.name.startswith("v"))
    assert len(stored) == 3 and read_latest(tmp / "bundles", "shedding") == stored[-1]


def test_replay_rebuilds_identical_bytes_and_refuses_changed_inputs(project, small_sample, tmp_path):
    tmp, cfg, runs = project
    res = runner.invoke(app, ["replay", runs[1]["mlflow_run_id"], "--out", str(tmp_path / "r1"), "-c", str(cfg)])
    assert res.exit_code == 0, res.output
    assert "identical" in res.output and "decisions.parquet" in res.output

    # The same run replayed against changed inputs: refused, naming the table.
    moved = tmp / "moved-data"
    shutil.copytree(small_sample, moved)
    import pyarrow.parquet as pq

    wl = pq.read_table(moved / "workloads.parquet")
    pq.write_table(wl.slice(0, wl.num_rows - 1), moved / "workloads.parquet")
    from flows.cli.replay import replay_run
    from flows.settings import load_settings
    from policies.errors import QresError

    settings = load_settings(cfg)
    _, client = _mlflow(tmp)
    manifest_path = tmp / "bundles" / "shedding" / runs[1]["bundle_version"] / "manifest.json"
    if manifest_path.exists():
        original = manifest_path.read_bytes()
        manifest = json.loads(original)
        assert manifest["data_dir"] == str(small_sample)
    with pytest.raises(QresError, match="no longer exists|workloads"):
        bad = settings.model_copy(update={"store_dir": tmp / "bundles"})
        _replay_with_data(bad, runs[1]["mlflow_run_id"], moved, tmp_path / "r2", replay_run)


def _replay_with_data(settings, run_id, data, out, replay_run):
    """Replay as if the run's input folder now held ``data`` (the files changed since)."""
    from qres_client.bundle import encode_json

    run_dir = settings.store_dir / "shedding"
    for p in run_dir.iterdir():
        if p.name.startswith("v") and (p / "manifest.json").exists():
            m = json.loads((p / "manifest.json").read_bytes())
            if m.get("mlflow_run_id") == run_id:
                copy = out.parent / "store-copy"
                shutil.copytree(settings.store_dir, copy)
                m["data_dir"] = str(data)
                (copy / "shedding" / p.name / "manifest.json").write_bytes(encode_json(m))
                return replay_run(settings.model_copy(update={"store_dir": copy}), run_id, out)
    raise AssertionError("run's bundle not in the store")
