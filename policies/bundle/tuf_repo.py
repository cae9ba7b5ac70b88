"""The TUF repository of a bundle store: signed root/targets/snapshot/timestamp under ``<store>/tuf/``.

Two key pairs, each one Ed25519 + one ML-DSA-65 key (``qres_client.signing.SigningKey``):

- the **root** pair (kept offline) signs ``N.root.json``: which keys may sign each role;
- the **online** pair (the publisher's) signs targets, snapshot and timestamp.

Every role's threshold is 2 over its two keys, so a signature of each algorithm is needed.
:func:`publish_targets` lists every family's ``LATEST`` and the files of every retained version
as targets and re-signs targets, snapshot and timestamp with new versions and expiry dates;
:func:`refresh_timestamp` re-signs only the timestamp (run it more often than its expiry: a
client refuses an expired one, which is what stops freeze and replay attacks on a fresh client);
:func:`rotate` writes the next root version with new keys (online, root or both) and re-signs
the rest, which is also how a compromised key is revoked (docs/distribution.md).
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from securesystemslib.signer import CryptoSigner, SSlibKey
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp
from tuf.api.serialization.json import JSONSerializer

from qres_client.bundle import LATEST_NAME, MANIFEST_NAME, list_versions
from qres_client.signing import SigningKey
from qres_client.tuf_channel import TUF_FOLDER

__all__ = [
    "EXPIRY",
    "init_repository",
    "publish_targets",
    "refresh_timestamp",
    "rotate",
    "tuf_keys",
    "ONLINE_KEY_DIR",
    "has_repository",
]

EXPIRY = {"root": timedelta(days=365), "targets": timedelta(days=30), "snapshot": timedelta(days=7)}
EXPIRY["timestamp"] = timedelta(days=1)
_ONLINE = ("targets", "snapshot", "timestamp")
_SERIALIZER = JSONSerializer(compact=False)


ONLINE_KEY_DIR = "tuf-online"  # under bundle.key_dir: the online pair that signs targets/snapshot/timestamp


def has_repository(store: str | Path) -> bool:
    """Whether the store carries a TUF repository (`qres keys tuf-init` made one)."""
    return (Path(store) / TUF_FOLDER / "targets.json").is_file()


def tuf_keys(key: SigningKey) -> list[tuple[SSlibKey, CryptoSigner]]:
    """The TUF public keys and signers of a key pair: one Ed25519, one ML-DSA-65."""
    out = []
    for private in (key.ed25519, key.mldsa65):
        public = SSlibKey.from_crypto(private.public_key())
        out.append((public, CryptoSigner(private, public)))
    return out


def _expires(role: str, now: datetime, override: dict[str, timedelta] | None) -> datetime:
    return (now + (override or {}).get(role, EXPIRY[role])).replace(microsecond=0)


def _write(path: Path, md: Metadata) -> None:
    tmp = path.with_name(f".tmp-{path.name}-{secrets.token_hex(4)}")
    tmp.write_bytes(md.to_bytes(_SERIALIZER))
    os.replace(tmp, path)


def _sign(md: Metadata, keys: list[tuple[SSlibKey, CryptoSigner]]) -> Metadata:
    md.signatures.clear()
    for _, signer in keys:
        md.sign(signer, append=True)
    return md


def _folder(store: str | Path) -> Path:
    return Path(store) / TUF_FOLDER


def _load(store: str | Path, role: str) -> Metadata:
    return Metadata.from_file(str(_folder(store) / f"{role}.json"))


def init_repository(store: str | Path, root_key: SigningKey, online_key: SigningKey, *, now=None, expiry=None) -> Path:
    """Create root v1 (threshold 2 per role) and sign the current store's targets; returns 1.root.json."""
    now = now or datetime.now(UTC)
    folder = _folder(store)
    folder.mkdir(parents=True, exist_ok=True)
    root = Metadata(Root(expires=_expires("root", now, expiry), consistent_snapshot=False))
    for public, _ in tuf_keys(root_key):
        root.signed.add_key(public, "root")
    for public, _ in tuf_keys(online_key):
        for role in _ONLINE:
            root.signed.add_key(public, role)
    for role in root.signed.roles.values():
        role.threshold = 2
    _sign(root, tuf_keys(root_key))
    _write(folder / "1.root.json", root)
    _write(folder / "root.json", root)
    publish_targets(store, online_key, now=now, expiry=expiry)
    return folder / "1.root.json"


def _targets(store: Path) -> dict[str, TargetFile]:
    out = {}
    for policy_dir in sorted(p for p in store.iterdir() if (p / LATEST_NAME).is_file()):
        paths = [policy_dir / LATEST_NAME]
        for version in list_versions(store, policy_dir.name):
            vdir = policy_dir / version
            paths += [vdir / MANIFEST_NAME, *sorted(f for f in vdir.iterdir() if f.name != MANIFEST_NAME)]
        for p in paths:
            rel = p.relative_to(store).as_posix()
            out[rel] = TargetFile.from_data(rel, p.read_bytes(), ["sha256"])
    return out


def publish_targets(store: str | Path, online_key: SigningKey, *, now=None, expiry=None) -> int:
    """Sign what the store holds now: new targets, snapshot and timestamp versions; the targets version."""
    now, store = now or datetime.now(UTC), Path(store)
    folder, keys = _folder(store), tuf_keys(online_key)
    old = _load(store, "targets").signed.version if (folder / "targets.json").is_file() else 0
    targets = Metadata(Targets(version=old + 1, expires=_expires("targets", now, expiry), targets=_targets(store)))
    _write(folder / "targets.json", _sign(targets, keys))
    old = _load(store, "snapshot").signed.version if (folder / "snapshot.json").is_file() else 0
    snapshot = Metadata(Snapshot(version=old + 1, expires=_expires("snapshot", now, expiry)))
    snapshot.signed.meta["targets.json"] = MetaFile(version=targets.signed.version)
    _write(folder / "snapshot.json", _sign(snapshot, keys))
    refresh_timestamp(store, online_key, now=now, expiry=expiry)
    return targets.signed.version


def refresh_timestamp(store: str | Path, online_key: SigningKey, *, now=None, expiry=None) -> int:
    """A new timestamp over the current snapshot, valid for ``EXPIRY['timestamp']`` from ``now``."""
    now, folder = now or datetime.now(UTC), _folder(store)
    snapshot = _load(store, "snapshot")
    old = _load(store, "timestamp").signed.version if (folder / "timestamp.json").is_file() else 0
    ts = Metadata(Timestamp(version=old + 1, expires=_expires("timestamp", now, expiry)))
    ts.signed.snapshot_meta = MetaFile(version=snapshot.signed.version)
    _write(folder / "timestamp.json", _sign(ts, tuf_keys(online_key)))
    return ts.signed.version


def rotate(
    store: str | Path,
    root_key: SigningKey,
    *,
    new_online_key: SigningKey | None = None,
    new_root_key: SigningKey | None = None,
    now=None,
    expiry=None,
) -> int:
    """Next root version with new online and/or root keys (the old ones revoked); returns its version.

    Signed by the current root keys (clients trust the new root only through them) and, when the
    root keys change, by the new ones too. Targets, snapshot and timestamp are re-signed with the
    online key in force afterwards, so clients move in one refresh.
    """
    now, folder = now or datetime.now(UTC), _folder(store)
    root = _load(store, "root")
    r = root.signed
    if new_online_key is not None:
        for role in _ONLINE:
            for keyid in list(r.roles[role].keyids):
                r.revoke_key(keyid, role)
            for public, _ in tuf_keys(new_online_key):
                r.add_key(public, role)
    if new_root_key is not None:
        for keyid in list(r.roles["root"].keyids):
            r.revoke_key(keyid, "root")
        for public, _ in tuf_keys(new_root_key):
            r.add_key(public, "root")
    r.version += 1
    r.expires = _expires("root", now, expiry)
    signers = tuf_keys(root_key) + (tuf_keys(new_root_key) if new_root_key is not None else [])
    _sign(root, signers)
    _write(folder / f"{r.version}.root.json", root)
    _write(folder / "root.json", root)
    if new_online_key is not None:
        publish_targets(store, new_online_key, now=now, expiry=expiry)
    return r.version
