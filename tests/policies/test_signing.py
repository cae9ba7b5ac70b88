"""Signatures: key files, environment keys, and both algorithms required."""

from __future__ import annotations

import json
import stat

import pytest

from policies.bundle.store import publish_bundle
from policies.errors import BundleVerificationError, ConfigError
from qres_client.bundle import encode_json, read_bundle
from qres_client.signing import (
    PRIVATE_KEY_NAME,
    PUBLIC_KEY_NAME,
    SigningKey,
    UnsignedBundleError,
    init_keys,
    load_public_keys,
    load_signing_key,
    verify_manifest_signatures,
)


def _publish(store, key=None):
    return publish_bundle(
        store,
        "shedding",
        {"policy.json": encode_json({"a": 1})},
        {"metrics": {"x": 0.1}},
        signer=key.sign if key else None,
    )


def test_keys_init_makes_an_owner_only_private_key(tmp_path):
    private, public = init_keys(tmp_path / "keys")
    assert (private.name, public.name) == (PRIVATE_KEY_NAME, PUBLIC_KEY_NAME)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    key, pub = load_signing_key(private), load_public_keys(public)
    assert key.public.key_id == pub.key_id and "ed25519" in public.read_text()
    with pytest.raises(ConfigError, match="already exists"):
        init_keys(tmp_path / "keys")
    init_keys(tmp_path / "keys", overwrite=True)
    assert load_public_keys(public).key_id != pub.key_id


def test_loose_private_key_permissions_are_refused(tmp_path):
    private, _ = init_keys(tmp_path)
    private.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_signing_key(private)


def test_keys_from_environment(tmp_path, monkeypatch):
    key = SigningKey.generate()
    monkeypatch.setenv("QRES_SIGNING_KEY", key.to_json())
    monkeypatch.setenv("QRES_PUBLIC_KEY", key.public.to_json())
    assert load_signing_key(None).public.key_id == key.public.key_id
    assert load_public_keys(None).key_id == key.public.key_id
    monkeypatch.setenv("QRES_PUBLIC_KEY", "{not json")
    with pytest.raises(ConfigError, match="QRES_PUBLIC_KEY"):
        load_public_keys(None)


def test_signed_manifest_verifies_with_both_algorithms(tmp_path):
    key = SigningKey.generate()
    b = _publish(tmp_path, key)
    manifest, _ = read_bundle(b.path)
    assert [s["alg"] for s in manifest["signatures"]] == ["ed25519", "ml-dsa-65"]
    assert verify_manifest_signatures(manifest, key.public, "b") is True


@pytest.mark.parametrize("drop", ["ed25519", "ml-dsa-65"])
def test_each_signature_is_required(tmp_path, drop):
    key = SigningKey.generate()
    manifest, _ = read_bundle(_publish(tmp_path, key).path)
    manifest["signatures"] = [s for s in manifest["signatures"] if s["alg"] != drop]
    with pytest.raises(BundleVerificationError, match=f"no {drop} signature"):
        verify_manifest_signatures(manifest, key.public, "b")


def test_other_key_edited_field_and_swapped_signature_are_refused(tmp_path):
    key, other = SigningKey.generate(), SigningKey.generate()
    a = read_bundle(_publish(tmp_path, key).path)[0]
    with pytest.raises(BundleVerificationError, match="names key"):
        verify_manifest_signatures(a, other.public, "b")
    forged = json.loads(json.dumps(a))  # claims the other key's id: the signature itself must still fail
    forged["signatures"] = [{**s, "key_id": other.public.key_id} for s in forged["signatures"]]
    with pytest.raises(BundleVerificationError, match="does not verify"):
        verify_manifest_signatures(forged, other.public, "b")
    edited = json.loads(json.dumps(a))
    edited["metrics"]["x"] = 0.2
    with pytest.raises(BundleVerificationError, match="ed25519 signature does not verify"):
        verify_manifest_signatures(edited, key.public, "b")
    b = read_bundle(_publish(tmp_path, key).path)[0]  # v000002, same key
    a["signatures"] = b["signatures"]
    with pytest.raises(BundleVerificationError, match="does not verify"):
        verify_manifest_signatures(a, key.public, "b")


def test_unsigned_is_refused_unless_allowed(tmp_path):
    manifest = read_bundle(_publish(tmp_path).path)[0]
    with pytest.raises(UnsignedBundleError, match="unsigned"):
        verify_manifest_signatures(manifest, SigningKey.generate().public, "b")
    assert verify_manifest_signatures(manifest, None, "b", allow_unsigned=True) is False


def test_signed_bundle_without_configured_keys_is_refused(tmp_path):
    manifest = read_bundle(_publish(tmp_path, SigningKey.generate()).path)[0]
    with pytest.raises(BundleVerificationError, match="no public keys"):
        verify_manifest_signatures(manifest, None, "b", allow_unsigned=True)
