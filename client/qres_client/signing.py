"""Manifest signatures: Ed25519 and ML-DSA-65 (post-quantum), both from ``cryptography``.

Why two: Ed25519 is small, fast and everywhere; ML-DSA-65 (FIPS 204) keeps the bundles
trustworthy against a future quantum attacker. A bundle is accepted only when *both*
verify, so breaking one scheme is not enough to forge a bundle.

What is signed: :func:`qres_client.bundle.signing_payload` of the manifest, i.e. a domain
prefix and the canonical JSON of the manifest without its ``signatures`` field. The
manifest lists the sha256 of every file, its policy and its version, so one signature
covers the whole bundle and an older version cannot be passed off as a newer one.

Key files (``qres keys init``)::

    <dir>/qres-signing.key   {"kind": "qresilience-signing-key", "ed25519": b64, "ml-dsa-65": b64}  mode 0600
    <dir>/qres-signing.pub   {"kind": "qresilience-public-key", "key_id": ..., "ed25519": b64, "ml-dsa-65": b64}

Keys can also come from the environment: ``QRES_SIGNING_KEY`` / ``QRES_PUBLIC_KEY`` hold
the *content* of those files (for secret stores that inject variables, not files).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa

from qres_client.bundle import signing_payload
from qres_client.errors import BundleVerificationError, ConfigError

__all__ = [
    "ALGORITHMS",
    "PRIVATE_KEY_NAME",
    "PUBLIC_KEY_NAME",
    "SIGNING_KEY_ENV",
    "PUBLIC_KEY_ENV",
    "SigningKey",
    "PublicKeys",
    "UnsignedBundleError",
    "init_keys",
    "load_signing_key",
    "load_public_keys",
    "verify_manifest_signatures",
]

ED25519, MLDSA65 = "ed25519", "ml-dsa-65"
ALGORITHMS = (ED25519, MLDSA65)
PRIVATE_KEY_NAME, PUBLIC_KEY_NAME = "qres-signing.key", "qres-signing.pub"
SIGNING_KEY_ENV, PUBLIC_KEY_ENV = "QRES_SIGNING_KEY", "QRES_PUBLIC_KEY"
_PRIVATE_KIND, _PUBLIC_KIND = "qresilience-signing-key", "qresilience-public-key"


class UnsignedBundleError(BundleVerificationError):
    """The bundle carries no signatures and the reader did not allow unsigned bundles."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object, what: str) -> bytes:
    try:
        return base64.b64decode(str(text), validate=True)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{what}: not valid base64 ({exc})") from None


@dataclass(frozen=True)
class PublicKeys:
    """The two public keys a reader checks signatures against."""

    ed25519: ed25519.Ed25519PublicKey
    mldsa65: mldsa.MLDSA65PublicKey

    @property
    def key_id(self) -> str:
        """Short fingerprint of both keys (names the key pair in manifests and errors)."""
        raw = self.ed25519.public_bytes_raw() + self.mldsa65.public_bytes_raw()
        return hashlib.sha256(raw).hexdigest()[:16]

    def to_json(self) -> str:
        return (
            json.dumps(
                {
                    "kind": _PUBLIC_KIND,
                    "key_id": self.key_id,
                    ED25519: _b64(self.ed25519.public_bytes_raw()),
                    MLDSA65: _b64(self.mldsa65.public_bytes_raw()),
                },
                indent=1,
            )
            + "\n"
        )

    @classmethod
    def from_json(cls, text: str, where: str) -> PublicKeys:
        doc = _parse(text, where, _PUBLIC_KIND)
        try:
            return cls(
                ed25519.Ed25519PublicKey.from_public_bytes(_unb64(doc.get(ED25519), where)),
                mldsa.MLDSA65PublicKey.from_public_bytes(_unb64(doc.get(MLDSA65), where)),
            )
        except ValueError as exc:
            raise ConfigError(f"{where}: not a valid public key ({exc})") from None


@dataclass(frozen=True)
class SigningKey:
    """A private key pair; ``sign`` returns the manifest's ``signatures`` entries."""

    ed25519: ed25519.Ed25519PrivateKey
    mldsa65: mldsa.MLDSA65PrivateKey
    mldsa65_seed: bytes

    @classmethod
    def generate(cls) -> SigningKey:
        seed = os.urandom(32)
        return cls(ed25519.Ed25519PrivateKey.generate(), mldsa.MLDSA65PrivateKey.from_seed_bytes(seed), seed)

    @property
    def public(self) -> PublicKeys:
        return PublicKeys(self.ed25519.public_key(), self.mldsa65.public_key())

    def to_json(self) -> str:
        return (
            json.dumps(
                {
                    "kind": _PRIVATE_KIND,
                    "key_id": self.public.key_id,
                    ED25519: _b64(self.ed25519.private_bytes_raw()),
                    MLDSA65: _b64(self.mldsa65_seed),
                },
                indent=1,
            )
            + "\n"
        )

    @classmethod
    def from_json(cls, text: str, where: str) -> SigningKey:
        doc = _parse(text, where, _PRIVATE_KIND)
        try:
            seed = _unb64(doc.get(MLDSA65), where)
            return cls(
                ed25519.Ed25519PrivateKey.from_private_bytes(_unb64(doc.get(ED25519), where)),
                mldsa.MLDSA65PrivateKey.from_seed_bytes(seed),
                seed,
            )
        except ValueError as exc:
            raise ConfigError(f"{where}: not a valid signing key ({exc})") from None

    def sign(self, payload: bytes) -> list[dict]:
        kid = self.public.key_id
        return [
            {"alg": ED25519, "key_id": kid, "sig": _b64(self.ed25519.sign(payload))},
            {"alg": MLDSA65, "key_id": kid, "sig": _b64(self.mldsa65.sign(payload))},
        ]


def _parse(text: str, where: str, kind: str) -> dict:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{where}: not a qresilience key file (invalid JSON: {exc})") from None
    if not isinstance(doc, dict) or doc.get("kind") != kind:
        raise ConfigError(f"{where}: expected a {kind!r} document; create one with `qres keys init`")
    return doc


def init_keys(key_dir: str | Path, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Create a new key pair in ``key_dir``; the private file is readable by its owner only.

    Refuses to replace existing keys unless ``overwrite``: bundles signed with the old
    key would no longer verify for clients configured with the new public key.
    """
    key_dir = Path(key_dir)
    key_dir.mkdir(parents=True, exist_ok=True)
    private, public = key_dir / PRIVATE_KEY_NAME, key_dir / PUBLIC_KEY_NAME
    if not overwrite and (private.exists() or public.exists()):
        raise ConfigError(f"{private} already exists; keep it, or pass --overwrite to replace the key pair")
    key = SigningKey.generate()
    tmp = key_dir / f".{PRIVATE_KEY_NAME}.tmp"
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never world-readable, not even briefly
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key.to_json())
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)  # in case a umask or ACL interfered
    os.replace(tmp, private)
    public.write_text(key.public.to_json(), encoding="ascii")
    return private, public


def load_signing_key(path: str | Path | None) -> SigningKey | None:
    """``$QRES_SIGNING_KEY`` (key content) if set, else the file at ``path`` if it exists, else None."""
    text = os.environ.get(SIGNING_KEY_ENV)
    if text:
        return SigningKey.from_json(text, f"${SIGNING_KEY_ENV}")
    if path is None or not Path(path).is_file():
        return None
    path = Path(path)
    if path.stat().st_mode & 0o077:
        raise ConfigError(
            f"{path}: private key is readable by others (mode {path.stat().st_mode & 0o777:o}); run `chmod 600 {path}`"
        )
    return SigningKey.from_json(path.read_text(encoding="ascii"), str(path))


def load_public_keys(source: PublicKeys | str | Path | None) -> PublicKeys | None:
    """Public keys from an object, a file path, or ``$QRES_PUBLIC_KEY`` when ``source`` is None."""
    if isinstance(source, PublicKeys):
        return source
    if source is None:
        text = os.environ.get(PUBLIC_KEY_ENV)
        return PublicKeys.from_json(text, f"${PUBLIC_KEY_ENV}") if text else None
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"public key file {path} does not exist; create keys with `qres keys init`")
    return PublicKeys.from_json(path.read_text(encoding="ascii"), str(path))


def verify_manifest_signatures(
    manifest: dict, keys: PublicKeys | None, where: str, *, allow_unsigned: bool = False
) -> bool:
    """Check both signatures of a parsed manifest; True if signed, False if unsigned and allowed.

    Raises BundleVerificationError (UnsignedBundleError for a bundle without signatures)
    when the bundle cannot be trusted: a signature missing, invalid, or not made by
    ``keys``.
    """
    sigs = manifest.get("signatures")
    if not sigs:
        if allow_unsigned:
            return False
        raise UnsignedBundleError(
            f"{where}: bundle is unsigned; refusing it. Publish with a signing key (`qres keys init`), "
            "or pass allow_unsigned=True where unsigned bundles are acceptable (e.g. local tests)"
        )
    if keys is None:
        raise BundleVerificationError(
            f"{where}: bundle is signed but no public keys are configured; pass public_keys= "
            f"(the {PUBLIC_KEY_NAME} file) or set ${PUBLIC_KEY_ENV}"
        )
    if not isinstance(sigs, list) or not all(isinstance(s, dict) for s in sigs):
        raise BundleVerificationError(f"{where}: 'signatures' must be a list of objects")
    by_alg = {s.get("alg"): s for s in sigs}
    payload = signing_payload(manifest)
    verifiers = {ED25519: keys.ed25519, MLDSA65: keys.mldsa65}
    for alg in ALGORITHMS:
        entry = by_alg.get(alg)
        if entry is None:
            raise BundleVerificationError(f"{where}: no {alg} signature; both {ALGORITHMS} are required")
        if entry.get("key_id") != keys.key_id:
            raise BundleVerificationError(
                f"{where}/manifest.json: {alg} signature names key {entry.get('key_id')!r}, but the configured "
                f"public key is {keys.key_id}: signed with another key, or tampered"
            )
        try:
            verifiers[alg].verify(base64.b64decode(str(entry.get("sig")), validate=True), payload)
        except (InvalidSignature, ValueError, TypeError):
            raise BundleVerificationError(
                f"{where}/manifest.json: {alg} signature does not verify against public key "
                f"{keys.key_id} (signed by key {entry.get('key_id')!r}): tampered, or signed with another key"
            ) from None
    return True
