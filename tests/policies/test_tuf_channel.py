"""The TUF channel end to end: a fresh (stateless) client refuses rollback, freeze and revoked keys.

Repository: policies.bundle.tuf_repo (root pair offline, online pair for targets/snapshot/
timestamp; threshold 2 = one Ed25519 + one ML-DSA-65 signature). Client: PolicyClient(tuf_root=...).
Served over a real loopback HTTP server as well as from the folder.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from policies.bundle.store import publish_bundle
from policies.bundle.tuf_repo import init_repository, publish_targets, refresh_timestamp, rotate
from policies.errors import BundleVerificationError
from qres_client.client import PolicyClient
from qres_client.signing import SigningKey
from tests.policies.test_client import KEY, decisions_table, publish_policy
from tests.policies.test_client_hardened import Store

ROOT_KEY = SigningKey.generate()  # the offline root pair


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    publish_policy(store)
    init_repository(store, ROOT_KEY, KEY)
    return store


def client(store, root: Path, **kw) -> PolicyClient:
    return PolicyClient(store, public_keys=KEY.public, tuf_root=root, timeout_s=2, **kw)


def test_fresh_client_loads_through_tuf_and_follows_new_versions(repo):
    root = repo / "tuf" / "1.root.json"
    c = client(repo, root)
    assert c.versions == {"shedding": "v000001"} and c.decide(down={"auth"}).exact
    publish_policy(repo, decisions_table(version_tag=0.1))
    publish_targets(repo, KEY)
    assert c.refresh() and c.versions == {"shedding": "v000002"}
    # Every role: threshold 2 over exactly one Ed25519 and one ML-DSA-65 key, and both signatures present.
    root_doc = json.loads((repo / "tuf" / "root.json").read_text())["signed"]
    for role in ("root", "targets", "snapshot", "timestamp"):
        r = root_doc["roles"][role]
        assert r["threshold"] == 2
        assert sorted(root_doc["keys"][k]["scheme"] for k in r["keyids"]) == ["ed25519", "ml-dsa-65/1"], role
        signed_by = {s["keyid"] for s in json.loads((repo / "tuf" / f"{role}.json").read_text())["signatures"]}
        assert signed_by == set(r["keyids"]), role


def test_rollback_of_latest_is_refused_by_a_fresh_client(repo):
    publish_policy(repo, decisions_table(version_tag=0.1))
    publish_targets(repo, KEY)
    (repo / "shedding" / "LATEST").write_text("v000001\n")  # pointed back, not re-signed
    with pytest.raises(BundleVerificationError, match="LengthOrHashMismatchError"):
        client(repo, repo / "tuf" / "1.root.json")


def test_replayed_old_metadata_and_a_freeze_are_refused_by_a_fresh_client(repo, tmp_path):
    old = tmp_path / "old-tuf"
    shutil.copytree(repo / "tuf", old)
    publish_policy(repo, decisions_table(version_tag=0.1))
    publish_targets(repo, KEY)
    # A freeze: the attacker keeps serving metadata whose timestamp has expired.
    refresh_timestamp(repo, KEY, now=datetime.now(UTC) - timedelta(days=3))
    with pytest.raises(BundleVerificationError, match="ExpiredMetadataError.*freeze"):
        client(repo, repo / "tuf" / "1.root.json")
    # A replay of old, once-valid metadata (and the old LATEST) after it expired.
    past = datetime.now(UTC) - timedelta(days=2)
    shutil.rmtree(repo / "tuf")
    shutil.copytree(old, repo / "tuf")
    refresh_timestamp(repo, KEY, now=past)
    (repo / "shedding" / "LATEST").write_text("v000001\n")
    with pytest.raises(BundleVerificationError, match="ExpiredMetadataError"):
        client(repo, repo / "tuf" / "1.root.json")


def test_stateful_client_refuses_a_version_rollback_of_the_metadata(repo, tmp_path):
    cache = tmp_path / "cache"
    c = client(repo, repo / "tuf" / "1.root.json", cache_dir=cache)
    old = tmp_path / "old-tuf"
    shutil.copytree(repo / "tuf", old)
    publish_policy(repo, decisions_table(version_tag=0.1))
    publish_targets(repo, KEY)
    assert c.refresh() and c.versions == {"shedding": "v000002"}
    shutil.rmtree(repo / "tuf")
    shutil.copytree(old, repo / "tuf")  # still unexpired, validly signed, but older than what was seen
    with pytest.raises(BundleVerificationError, match="BadVersionNumberError.*rollback"):
        c.refresh()
    assert c.versions == {"shedding": "v000002"}


def test_rotation_revokes_a_compromised_online_key(repo):
    """Compromise recovery: rotate the online pair through root v2; the old pair's signatures stop counting."""
    root_v1 = repo / "tuf" / "1.root.json"
    new_online = SigningKey.generate()
    assert rotate(repo, ROOT_KEY, new_online_key=new_online) == 2
    c = client(repo, root_v1)  # a client that only knows root v1 walks to v2
    assert c.versions == {"shedding": "v000001"}
    # The attacker, holding the revoked pair, signs a new timestamp/snapshot/targets: refused.
    publish_policy(repo, decisions_table(version_tag=0.2))
    publish_targets(repo, KEY)
    with pytest.raises(BundleVerificationError, match="UnsignedMetadataError.*revoked key"):
        client(repo, root_v1)
    # The publisher re-signs with the new pair: accepted again.
    publish_targets(repo, new_online)
    assert client(repo, root_v1).versions == {"shedding": "v000002"}


def test_one_signature_of_the_pair_is_not_enough(repo):
    for role in ("timestamp",):
        path = repo / "tuf" / f"{role}.json"
        doc = json.loads(path.read_text())
        doc["signatures"] = doc["signatures"][:1]  # only the Ed25519 (or only the ML-DSA) half
        path.write_text(json.dumps(doc))
    with pytest.raises(BundleVerificationError, match="UnsignedMetadataError"):
        client(repo, repo / "tuf" / "1.root.json")


def test_root_key_rotation_and_http_store(repo):
    new_root = SigningKey.generate()
    assert rotate(repo, ROOT_KEY, new_root_key=new_root) == 2
    assert rotate(repo, new_root, new_online_key=SigningKey.generate()) == 3
    store = Store()
    try:
        store.load(repo)
        c = client(store.url, repo / "tuf" / "1.root.json")
        assert c.versions == {"shedding": "v000001"} and c.decide(down={"auth"}).exact
    finally:
        store.close()


def test_a_root_signed_by_the_old_root_pair_alone_after_root_rotation_is_refused(repo):
    new_root = SigningKey.generate()
    rotate(repo, ROOT_KEY, new_root_key=new_root)
    rotate(repo, ROOT_KEY, new_online_key=SigningKey.generate())  # the revoked root pair tries to sign v3
    with pytest.raises(BundleVerificationError, match="UnsignedMetadataError"):
        client(repo, repo / "tuf" / "1.root.json")


def test_publish_bundle_unsigned_by_tuf_is_not_served(repo):
    publish_bundle(repo, "standby", {"decisions.parquet": b"x"}, {"mlflow_run_id": "r"}, signer=KEY.sign)
    c = client(repo, repo / "tuf" / "1.root.json")  # standby is not a TUF target yet: not loaded
    assert "standby" not in c.versions
