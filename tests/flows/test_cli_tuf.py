"""`qres keys tuf-init / tuf-sign / rotate` and the documented compromise-recovery procedure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli.app import app
from policies.bundle.tuf_repo import publish_targets
from policies.errors import BundleVerificationError
from qres_client.client import PolicyClient
from qres_client.signing import load_signing_key
from tests.policies.test_client import KEY, decisions_table, publish_policy

runner = CliRunner()


def _ok(*args: str) -> str:
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.output


def test_compromise_recovery_with_qres_keys_rotate(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "store"
    publish_policy(store)
    _ok("keys", "tuf-init", "--store", str(store), "--root-dir", "offline-root")
    root_v1 = store / "tuf" / "1.root.json"
    assert json.loads(root_v1.read_text())["signed"]["version"] == 1

    def fresh() -> PolicyClient:
        return PolicyClient(store, public_keys=KEY.public, tuf_root=root_v1)

    assert fresh().versions == {"shedding": "v000001"}
    publish_policy(store, decisions_table(version_tag=0.1))
    with pytest.raises(BundleVerificationError, match="LengthOrHashMismatchError"):
        fresh()  # LATEST moved but is not signed yet: refused until `qres keys tuf-sign`
    _ok("keys", "tuf-sign", "--store", str(store))
    assert fresh().versions == {"shedding": "v000002"}

    # Step 1 of the procedure: the online pair leaked. Rotate: root v2 revokes it.
    online = next((tmp_path / ".qres" / "keys").glob("tuf-online"))
    leaked = load_signing_key(online / "qres-signing.key")
    assert "root version 2" in _ok("keys", "rotate", "--store", str(store), "--root-dir", "offline-root")
    assert list((tmp_path / ".qres" / "keys").glob("tuf-online.revoked-*"))
    assert fresh().versions == {"shedding": "v000002"}
    # The attacker signs new metadata with the leaked pair: a fresh client refuses it, naming why.
    publish_policy(store, decisions_table(version_tag=0.2))
    publish_targets(store, leaked)
    with pytest.raises(BundleVerificationError, match="UnsignedMetadataError.*revoked key"):
        fresh()
    # Step 2: re-sign with the new online pair; clients move on.
    _ok("keys", "tuf-sign", "--store", str(store))
    assert fresh().versions == {"shedding": "v000003"}
    # The root pair too (--root): root v3, signed by the old and the new root pair.
    assert "root version 3" in _ok("keys", "rotate", "--store", str(store), "--root-dir", "offline-root", "--root")
    assert fresh().versions == {"shedding": "v000003"}
    assert len(list(tmp_path.glob("offline-root.revoked-*"))) == 1


@pytest.mark.e2e
def test_a_nightly_re_signs_the_tuf_channel(prefect_harness, small_sample: Path, tmp_path: Path, monkeypatch) -> None:
    """The publish path signs the TUF metadata with LATEST: a fresh TUF client follows each nightly."""
    from flows.nightly import nightly
    from qres_client.signing import PUBLIC_KEY_NAME, load_public_keys

    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "qres.toml"
    cfg.write_text(
        f'data_dir = "{small_sample}"\nstore_dir = "bundles"\nstate_dir = "state"\nseed = 5\n'
        "[solve]\ntime_limit_s = 1.0\nanneal_num_reads = 4\nanneal_num_sweeps = 100\n"
        '[backtest]\nenabled = false\n[bundle]\nkey_dir = "keys"\n'
    )
    _ok("keys", "init", "--config", str(cfg))
    first = nightly(config=str(cfg))
    _ok("keys", "tuf-init", "--config", str(cfg), "--store", "bundles", "--root-dir", "offline-root")
    keys = load_public_keys(tmp_path / "keys" / PUBLIC_KEY_NAME)
    root = tmp_path / "bundles" / "tuf" / "1.root.json"
    assert (
        PolicyClient(tmp_path / "bundles", public_keys=keys, tuf_root=root).versions["shedding"]
        == first["bundle_version"]
    )
    second = nightly(config=str(cfg))  # publishes v000002 of every family and re-signs the channel
    assert second["published"] and second["bundle_version"] != first["bundle_version"]
    fresh = PolicyClient(tmp_path / "bundles", public_keys=keys, tuf_root=root)
    assert fresh.versions["shedding"] == second["bundle_version"]
