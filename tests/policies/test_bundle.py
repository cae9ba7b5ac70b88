"""Bundle format: atomic publish, verification, versions, LATEST, crash and concurrency safety."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

from policies.bundle import store
from policies.bundle.store import publish_bundle, set_latest
from policies.errors import BundleVerificationError
from qres_client.bundle import (
    BUNDLE_SCHEMA_VERSION,
    encode_json,
    encode_parquet,
    list_versions,
    read_latest,
    verify_bundle,
)
from tests.waits import WAIT_S

REPO = Path(__file__).resolve().parents[2]
POLICY = "shedding"


def sample_files(tag: str = "a") -> dict[str, bytes]:
    table = pa.table({"scenario_key": ["normal", tag], "admit": [1.0, 0.5]})
    return {
        "decisions.parquet": encode_parquet(table),
        "policy.json": encode_json({"policy": POLICY, "tag": tag, "name": "café"}),
    }


def publish(store: Path, tag: str = "a", **kwargs) -> store.PublishedBundle:
    fields = {"mlflow_run_id": "run-1", "inputs": {"services": "ab" * 32}, "metrics": {"loss": 1.5}}
    return publish_bundle(store, POLICY, sample_files(tag), fields, **kwargs)


def test_publish_writes_the_layout_and_verifies(tmp_path):
    b = publish(tmp_path, created_at="2026-01-02T03:04:05Z")
    assert b.version == "v000001"
    assert b.path == tmp_path / POLICY / "v000001"
    assert sorted(p.name for p in b.path.iterdir()) == ["decisions.parquet", "manifest.json", "policy.json"]
    assert (tmp_path / POLICY / "LATEST").read_bytes() == b"v000001\n"
    manifest = verify_bundle(b.path)
    assert manifest == b.manifest == json.loads((b.path / "manifest.json").read_bytes())
    assert manifest["schema_version"] == BUNDLE_SCHEMA_VERSION
    assert manifest["policy"] == POLICY and manifest["version"] == "v000001"
    assert manifest["created_at"] == "2026-01-02T03:04:05Z"
    assert manifest["mlflow_run_id"] == "run-1" and manifest["metrics"] == {"loss": 1.5}
    assert manifest["signatures"] == []
    data = (b.path / "policy.json").read_bytes()
    assert manifest["files"]["policy.json"]["bytes"] == len(data)
    assert set(manifest["files"]) == {"decisions.parquet", "policy.json"}


def test_default_created_at_is_utc_z(tmp_path):
    created = publish(tmp_path).manifest["created_at"]
    assert created.endswith("Z") and time.strptime(created, "%Y-%m-%dT%H:%M:%SZ")


def test_encode_json_is_deterministic_and_strict():
    assert encode_json({"b": 1, "a": ["é", 2.5]}) == '{"a":["é",2.5],"b":1}\n'.encode()
    assert encode_json({"a": 1, "b": 2}) == encode_json({"b": 2, "a": 1})
    with pytest.raises(ValueError):
        encode_json({"x": float("nan")})


def test_same_files_give_identical_bytes(tmp_path):
    first, second = publish(tmp_path), publish(tmp_path)
    for name in ("decisions.parquet", "policy.json"):
        assert (first.path / name).read_bytes() == (second.path / name).read_bytes()
        assert first.manifest["files"][name] == second.manifest["files"][name]
    assert (first.path / "manifest.json").read_bytes() != (second.path / "manifest.json").read_bytes()
    table = pa.table({"k": ["x", "y"], "v": [1, 2]})
    assert encode_parquet(table) == encode_parquet(pa.table({"k": ["x", "y"], "v": [1, 2]}))


def test_versions_strictly_increase_and_latest_follows(tmp_path):
    assert list_versions(tmp_path, POLICY) == [] and read_latest(tmp_path, POLICY) is None
    versions = [publish(tmp_path, tag=str(i)).version for i in range(3)]
    assert versions == ["v000001", "v000002", "v000003"]
    assert list_versions(tmp_path, POLICY) == versions
    assert read_latest(tmp_path, POLICY) == "v000003"
    assert publish(tmp_path, set_latest=False).version == "v000004"
    assert read_latest(tmp_path, POLICY) == "v000003"


def test_set_latest_rolls_back_and_refuses_unknown_or_bad(tmp_path):
    publish(tmp_path, "a")
    publish(tmp_path, "b")
    with pytest.raises(ValueError, match="refusing to move it back"):
        set_latest(tmp_path, POLICY, "v000001")
    assert read_latest(tmp_path, POLICY) == "v000002"
    set_latest(tmp_path, POLICY, "v000001", rollback=True)
    assert read_latest(tmp_path, POLICY) == "v000001"
    with pytest.raises(BundleVerificationError, match="v000007"):
        set_latest(tmp_path, POLICY, "v000007")
    (tmp_path / POLICY / "v000002" / "policy.json").write_bytes(b"{}\n")
    with pytest.raises(BundleVerificationError, match="policy.json"):
        set_latest(tmp_path, POLICY, "v000002")
    assert read_latest(tmp_path, POLICY) == "v000001"
    with pytest.raises(ValueError):
        set_latest(tmp_path, POLICY, "../v000001")


def test_latest_changes_only_after_the_version_is_complete(tmp_path, monkeypatch):
    publish(tmp_path, "a")
    seen = []
    real_replace = os.replace

    def spying_replace(src, dst):
        if Path(dst).name == "LATEST":
            seen.append((read_latest(tmp_path, POLICY), verify_bundle(tmp_path / POLICY / "v000002")["version"]))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spying_replace)
    publish(tmp_path, "b")
    assert seen == [("v000001", "v000002")]  # old LATEST while the new version already verified


@pytest.mark.parametrize("name", ["", "A", "a/b", "../x", ".hidden", "..", "x y", "ü"])
def test_bad_names_are_refused(tmp_path, name):
    with pytest.raises(ValueError, match="name"):
        publish_bundle(tmp_path, name, sample_files(), {})
    with pytest.raises(ValueError, match="name"):
        publish_bundle(tmp_path, POLICY, {name: b"x"}, {})
    assert not (tmp_path / "x").exists() and list(tmp_path.glob("**/v0*")) == []


@pytest.mark.parametrize(
    "files, fields, error",
    [
        ({}, {}, ValueError),
        ({"manifest.json": b"{}"}, {}, ValueError),
        ({"a.txt": "text"}, {}, TypeError),
        ({"a.txt": b"x"}, {"version": "v9"}, ValueError),
        ({"a.txt": b"x"}, {"files": {}}, ValueError),
        ({"a.txt": b"x"}, {"metric": float("inf")}, ValueError),
    ],
)
def test_bad_publish_arguments(tmp_path, files, fields, error):
    with pytest.raises(error):
        publish_bundle(tmp_path, POLICY, files, fields)
    assert list_versions(tmp_path, POLICY) == []


@pytest.mark.parametrize("name", ["decisions.parquet", "policy.json", "manifest.json"])
def test_flipped_byte_is_detected_and_named(tmp_path, name):
    b = publish(tmp_path)
    path = b.path / name
    data = bytearray(path.read_bytes())
    pos = 0 if name == "manifest.json" else len(data) // 2  # manifest: break its JSON
    data[pos] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(BundleVerificationError, match=name.replace(".", r"\.")) as info:
        verify_bundle(b.path)
    if name != "manifest.json":
        expected = b.manifest["files"][name]["sha256"]
        assert expected in str(info.value) and store._sha256(bytes(data)) in str(info.value)


def test_edited_hash_in_manifest_is_detected(tmp_path):
    b = publish(tmp_path)
    manifest = dict(b.manifest)
    manifest["files"] = {**manifest["files"], "policy.json": {"sha256": "0" * 64, "bytes": 3}}
    (b.path / "manifest.json").write_bytes(encode_json(manifest))
    with pytest.raises(BundleVerificationError, match="policy.json: sha256 mismatch"):
        verify_bundle(b.path)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: (p / "policy.json").unlink(), "missing"),
        (lambda p: (p / "extra.txt").write_bytes(b"x"), "unexpected"),
        (lambda p: (p / "subdir").mkdir(), "subdir"),
        (lambda p: (p / "manifest.json").unlink(), "manifest.json: missing"),
        (lambda p: (p / "manifest.json").write_bytes(b"[1]\n"), "JSON object"),
        (lambda p: (p / "manifest.json").write_bytes(b"\xff\xfe"), "not valid JSON"),
        (lambda p: _rewrite_manifest(p, schema_version=2), "schema_version 2"),
        (lambda p: _rewrite_manifest(p, files={"../etc.txt": {"sha256": "0", "bytes": 1}}), "bad files entry"),
        (lambda p: _rewrite_manifest(p, version="v000005"), "folder is shedding/v000001"),
    ],
)
def test_broken_bundles_are_refused(tmp_path, damage, message):
    b = publish(tmp_path)
    damage(b.path)
    with pytest.raises(BundleVerificationError, match=message):
        verify_bundle(b.path)


def _rewrite_manifest(path: Path, **changes) -> None:
    manifest = json.loads((path / "manifest.json").read_bytes())
    manifest.update(changes)
    (path / "manifest.json").write_bytes(encode_json(manifest))


def test_copied_version_folder_is_refused(tmp_path):
    b = publish(tmp_path)
    shutil.copytree(b.path, tmp_path / POLICY / "v000002")
    with pytest.raises(BundleVerificationError, match="v000001"):
        verify_bundle(tmp_path / POLICY / "v000002")


@pytest.mark.parametrize("content", [b"v000001", b"latest\n", b"v1\n", b"\xff\n", b""])
def test_malformed_latest_is_an_error(tmp_path, content):
    publish(tmp_path)
    (tmp_path / POLICY / "LATEST").write_bytes(content)
    with pytest.raises(BundleVerificationError, match="LATEST"):
        read_latest(tmp_path, POLICY)


def test_leftover_tmp_dirs_are_ignored_then_cleaned(tmp_path):
    publish(tmp_path)
    stale = tmp_path / POLICY / ".tmp-v000009-dead"
    shutil.copytree(tmp_path / POLICY / "v000001", stale)
    stale_latest = tmp_path / POLICY / ".tmp-LATEST-dead"
    stale_latest.write_bytes(b"v000009\n")
    assert list_versions(tmp_path, POLICY) == ["v000001"]
    assert publish(tmp_path).version == "v000002"  # the leftover's name does not count
    assert not stale.exists() and not stale_latest.exists()
    assert list_versions(tmp_path, POLICY) == ["v000001", "v000002"]


_CRASH_CHILD = """
import os, sys, time
from policies.bundle import store
def stuck_rename(src, dst):
    time.sleep(60)
os.rename = stuck_rename
store.publish_bundle(sys.argv[1], "shedding", {"policy.json": b"{}\\n"}, {})
"""


def test_crash_before_rename_leaves_no_version(tmp_path):
    publish(tmp_path)
    child = subprocess.Popen([sys.executable, "-c", _CRASH_CHILD, str(tmp_path)], cwd=REPO)
    try:
        deadline = time.monotonic() + WAIT_S
        while not list((tmp_path / POLICY).glob(".tmp-v000002-*/manifest.json")):
            assert child.poll() is None, "child exited early"
            assert time.monotonic() < deadline, "child never started writing"
            time.sleep(0.02)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert not (tmp_path / POLICY / "v000002").exists()
    assert list_versions(tmp_path, POLICY) == ["v000001"]
    assert read_latest(tmp_path, POLICY) == "v000001"
    # The dead publisher's lock died with it; the next publish takes over and cleans up.
    assert publish(tmp_path).version == "v000002"
    assert list((tmp_path / POLICY).glob(".tmp-*")) == []


def _publish_many(store: str, who: str, n: int, start) -> None:
    start.wait(30)  # both children begin together, so their publishes overlap
    for i in range(n):
        publish_bundle(store, POLICY, {"policy.json": encode_json({"who": who, "i": i})}, {"who": who})


def test_concurrent_publishers_never_interleave(tmp_path):
    ctx = multiprocessing.get_context("spawn")  # no fork of a process holding pyarrow threads
    start = ctx.Barrier(2)
    procs = [ctx.Process(target=_publish_many, args=(str(tmp_path), who, 5, start)) for who in ("p1", "p2")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    versions = list_versions(tmp_path, POLICY)
    assert versions == [f"v{i:06d}" for i in range(1, 11)]
    owners = [verify_bundle(tmp_path / POLICY / v)["who"] for v in versions]
    assert sorted(owners) == ["p1"] * 5 + ["p2"] * 5
    for who in ("p1", "p2"):  # each publisher's own sequence is kept in order
        mine = [v for v, o in zip(versions, owners, strict=True) if o == who]
        seq = [json.loads((tmp_path / POLICY / v / "policy.json").read_bytes())["i"] for v in mine]
        assert seq == list(range(5))
    assert read_latest(tmp_path, POLICY) == "v000010"
    assert list((tmp_path / POLICY).glob(".tmp-*")) == []
