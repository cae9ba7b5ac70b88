"""The bundle format: atomic, verifiable folders of policy decisions.

Layout of a bundle store::

    <store>/<policy>/<version>/manifest.json      what, when, from what, and the sha256 of every file
    <store>/<policy>/<version>/decisions.parquet  (or any other files the caller publishes)
    <store>/<policy>/LATEST                       the newest version name + "\\n"
    <store>/<policy>/.lock                        held (flock) by a publisher for its whole publish

Why it is safe to read while someone publishes: every file is written and fsynced in a
``.tmp-*`` folder, the manifest last, then the folder is renamed to its version name in
one atomic step, and ``LATEST`` is replaced (temp file + ``os.replace``) only after that.
A crash leaves either no version folder or a complete one; readers ignore ``.tmp-*``
leftovers and the next publisher removes them. A published version is never modified.

Only the standard library and ``qres_client.errors`` are imported here (plus pyarrow,
lazily, in :func:`encode_parquet`): the runtime client depends on this module.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from qres_client.errors import BundleVerificationError

__all__ = [
    "BUNDLE_SCHEMA_VERSION",
    "MANIFEST_NAME",
    "LATEST_NAME",
    "PublishedBundle",
    "publish_bundle",
    "read_latest",
    "set_latest",
    "verify_bundle",
    "verify_files",
    "read_bundle",
    "list_versions",
    "encode_json",
    "encode_parquet",
    "signing_payload",
    "prune_versions",
    "read_bundle_bytes",
    "check_manifest_identity",
    "version_number",
]

BUNDLE_SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
LATEST_NAME = "LATEST"
_LOCK_NAME = ".lock"
_TMP_PREFIX = ".tmp-"
# Keys the publisher writes itself; a caller may not override them.
_RESERVED_FIELDS = ("schema_version", "policy", "version", "created_at", "files", "signatures")
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_VERSION_RE = re.compile(r"v(\d{6,})")


@dataclass(frozen=True)
class PublishedBundle:
    policy: str
    version: str
    path: Path
    manifest: dict


def encode_json(obj: object) -> bytes:
    """Deterministic JSON bytes (sorted keys, compact, UTF-8, trailing newline).

    NaN and infinities are refused (ValueError): they are not JSON and would not
    round-trip through other readers.
    """
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def encode_parquet(table: object) -> bytes:
    """Parquet bytes of a pyarrow table with fixed writer options (same table -> same bytes)."""
    import pyarrow.parquet as pq  # lazy: keeps `import qres_client.bundle` stdlib-only

    sink = io.BytesIO()
    pq.write_table(
        table,
        sink,
        compression="zstd",
        compression_level=3,
        use_dictionary=True,
        write_statistics=True,
        row_group_size=1 << 20,
    )
    return sink.getvalue()


def _check_name(kind: str, name: object) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ValueError(
            f"bad {kind} name {name!r}: use lowercase letters, digits, '_', '.', '-' "
            "(starting with a letter or digit, no path separators)"
        )
    return name


def _version_number(name: str) -> int | None:
    m = _VERSION_RE.fullmatch(name)
    return int(m.group(1)) if m else None


def version_number(name: object) -> int | None:
    """The number in a version name (``'v000012'`` -> 12), None for anything else."""
    return _version_number(name) if isinstance(name, str) else None


_SIGNING_DOMAIN = b"qresilience-manifest-v1\n"


def signing_payload(manifest: Mapping[str, object]) -> bytes:
    """The bytes a manifest's signatures cover: a domain prefix + its canonical JSON sans signatures.

    Canonical JSON round-trips exactly (sorted keys, repr floats), so a reader re-derives
    the same bytes from the parsed manifest.
    """
    return _SIGNING_DOMAIN + encode_json({k: v for k, v in manifest.items() if k != "signatures"})


def _format_version(n: int) -> str:
    return f"v{n:06d}"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


@contextlib.contextmanager
def _policy_lock(policy_dir: Path) -> Iterator[None]:
    """Exclusive lock for one policy folder (released by the kernel if we die)."""
    policy_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(policy_dir / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _remove_stale_tmp(policy_dir: Path) -> None:
    """Delete ``.tmp-*`` leftovers; only call under the lock (then none is in use)."""
    for p in policy_dir.glob(_TMP_PREFIX + "*"):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


def _next_version(policy_dir: Path) -> str:
    # Every version-named folder counts, complete or not, so a number is never reused.
    numbers = [n for p in policy_dir.iterdir() if (n := _version_number(p.name)) is not None]
    return _format_version(max(numbers, default=0) + 1)


def _write_latest(policy_dir: Path, version: str) -> None:
    tmp = policy_dir / f"{_TMP_PREFIX}{LATEST_NAME}-{secrets.token_hex(4)}"
    _write_synced(tmp, (version + "\n").encode("ascii"))
    os.replace(tmp, policy_dir / LATEST_NAME)
    _fsync_dir(policy_dir)


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def publish_bundle(
    store: str | Path,
    policy: str,
    files: Mapping[str, bytes],
    manifest_fields: Mapping[str, object],
    *,
    set_latest: bool = True,
    created_at: str | None = None,
    signer: Callable[[bytes], list[dict]] | None = None,
    keep: int | None = None,
    protect: tuple[str, ...] = (),
) -> PublishedBundle:
    """Publish ``files`` as the next version of ``policy``, atomically.

    The manifest holds ``manifest_fields`` (JSON-serialisable: run id, input hashes,
    solvers, gates, metrics) plus the fields the publisher owns (schema version, policy,
    version, ``created_at``, sha256 and size of every file, signatures). ``LATEST`` moves
    to the new version last, and only when ``set_latest``.

    ``signer`` receives :func:`signing_payload` of the manifest and returns its
    ``signatures`` entries (see ``qres_client.signing``); without it the bundle is unsigned.
    ``keep`` (when set) prunes old versions afterwards, see :func:`prune_versions`.
    """
    _check_name("policy", policy)
    if not files:
        raise ValueError("a bundle needs at least one file")
    for name, data in files.items():
        _check_name("file", name)
        if name == MANIFEST_NAME or name == LATEST_NAME:
            raise ValueError(f"file name {name!r} is reserved by the bundle format")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"file {name!r}: expected bytes, got {type(data).__name__}")
    clash = sorted(set(manifest_fields) & set(_RESERVED_FIELDS))
    if clash:
        raise ValueError(f"manifest_fields may not set {clash}: the publisher writes them")
    encode_json(dict(manifest_fields))  # fail before taking the lock if not serialisable

    policy_dir = Path(store) / policy
    with _policy_lock(policy_dir):
        _remove_stale_tmp(policy_dir)
        version = _next_version(policy_dir)
        tmp_dir = policy_dir / f"{_TMP_PREFIX}{version}-{secrets.token_hex(4)}"
        tmp_dir.mkdir()
        try:
            entries = {}
            for name in sorted(files):
                data = bytes(files[name])
                _write_synced(tmp_dir / name, data)
                entries[name] = {"sha256": _sha256(data), "bytes": len(data)}
            manifest = dict(manifest_fields)
            manifest.update(
                schema_version=BUNDLE_SCHEMA_VERSION,
                policy=policy,
                version=version,
                created_at=created_at or _utc_now(),
                files=entries,
                signatures=[],
            )
            if signer is not None:
                manifest["signatures"] = signer(signing_payload(manifest))
            _write_synced(tmp_dir / MANIFEST_NAME, encode_json(manifest))
            _fsync_dir(tmp_dir)
            final_dir = policy_dir / version
            os.rename(tmp_dir, final_dir)  # the commit point
        except BaseException:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise
        _fsync_dir(policy_dir)
        if set_latest:
            _write_latest(policy_dir, version)
        if keep is not None:
            _prune_locked(policy_dir, keep, protect)
    return PublishedBundle(policy=policy, version=version, path=final_dir, manifest=manifest)


def _prune_locked(policy_dir: Path, keep: int, protect: tuple[str, ...]) -> list[str]:
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    names = sorted((n, p.name) for p in policy_dir.iterdir() if (n := _version_number(p.name)) is not None)
    latest = read_latest(policy_dir.parent, policy_dir.name)
    spare = {latest, *protect}
    doomed = [name for _, name in names[:-keep] if name not in spare]
    for name in doomed:
        # Rename first (atomic), so no reader ever sees a half-deleted version folder.
        grave = policy_dir / f"{_TMP_PREFIX}del-{name}-{secrets.token_hex(4)}"
        os.rename(policy_dir / name, grave)
        shutil.rmtree(grave, ignore_errors=True)
    if doomed:
        _fsync_dir(policy_dir)
    return doomed


def prune_versions(store: str | Path, policy: str, keep: int, protect: tuple[str, ...] = ()) -> list[str]:
    """Delete all but the newest ``keep`` versions; never LATEST's nor those in ``protect``.

    Returns the deleted version names. The newest version is always kept, so version
    numbers are never reused.
    """
    policy_dir = Path(store) / _check_name("policy", policy)
    if not policy_dir.is_dir():
        return []
    with _policy_lock(policy_dir):
        return _prune_locked(policy_dir, keep, protect)


def read_latest(store: str | Path, policy: str) -> str | None:
    """The version ``LATEST`` names, or None when the policy has never been published."""
    path = Path(store) / _check_name("policy", policy) / LATEST_NAME
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleVerificationError(f"{path}: cannot read LATEST ({exc})") from exc
    version = text.strip()
    if _version_number(version) is None or text != version + "\n":
        raise BundleVerificationError(
            f"{path}: LATEST must hold one version name like 'v000001' and a newline, got {text[:40]!r}"
        )
    return version


def set_latest(store: str | Path, policy: str, version: str) -> None:
    """Point ``LATEST`` at an existing version (e.g. a rollback) after verifying it."""
    policy_dir = Path(store) / _check_name("policy", policy)
    if _version_number(version) is None:
        raise ValueError(f"bad version name {version!r}: expected e.g. 'v000001'")
    with _policy_lock(policy_dir):
        verify_bundle(policy_dir / version)
        _write_latest(policy_dir, version)


def list_versions(store: str | Path, policy: str) -> list[str]:
    """Published versions of ``policy``, oldest first (temp folders are never listed)."""
    policy_dir = Path(store) / _check_name("policy", policy)
    if not policy_dir.is_dir():
        return []
    found = [
        (n, p.name)
        for p in policy_dir.iterdir()
        if (n := _version_number(p.name)) is not None and (p / MANIFEST_NAME).is_file()
    ]
    return [name for _, name in sorted(found)]


def verify_files(manifest_bytes: bytes, files: Mapping[str, bytes], where: str) -> dict:
    """Check a manifest against the bytes of the files it lists; return the manifest.

    ``files`` must hold exactly the files the manifest lists (the manifest excluded).
    ``where`` names the bundle in error messages. Transport-agnostic, so a fetcher that
    downloads a bundle can verify the bytes it holds rather than re-reading a disk.
    """
    try:
        manifest = json.loads(manifest_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BundleVerificationError(f"{where}/{MANIFEST_NAME}: not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict):
        raise BundleVerificationError(f"{where}/{MANIFEST_NAME}: expected a JSON object")
    if manifest.get("schema_version") != BUNDLE_SCHEMA_VERSION:
        raise BundleVerificationError(
            f"{where}/{MANIFEST_NAME}: schema_version {manifest.get('schema_version')!r} is not "
            f"{BUNDLE_SCHEMA_VERSION}; upgrade the client or republish the bundle"
        )
    listed = manifest.get("files")
    if not isinstance(listed, dict) or not listed:
        raise BundleVerificationError(f"{where}/{MANIFEST_NAME}: 'files' must be a non-empty object")
    for name, entry in listed.items():
        if (
            not isinstance(name, str)
            or not _NAME_RE.fullmatch(name)
            or name == MANIFEST_NAME
            or not isinstance(entry, dict)
            or not isinstance(entry.get("sha256"), str)
            or not isinstance(entry.get("bytes"), int)
        ):
            raise BundleVerificationError(f"{where}/{MANIFEST_NAME}: bad files entry {name!r}: {entry!r}")
    missing = sorted(set(listed) - set(files))
    if missing:
        raise BundleVerificationError(f"{where}: file(s) listed in the manifest are missing: {missing}")
    extra = sorted(set(files) - set(listed))
    if extra:
        raise BundleVerificationError(f"{where}: unexpected file(s) not in the manifest: {extra}")
    for name in sorted(listed):
        expected, actual = listed[name]["sha256"], _sha256(files[name])
        if actual != expected or len(files[name]) != listed[name]["bytes"]:
            raise BundleVerificationError(
                f"{where}/{name}: sha256 mismatch (expected {expected}, actual {actual}; "
                f"expected {listed[name]['bytes']} bytes, actual {len(files[name])}): "
                "the file is corrupt or was tampered with"
            )
    return manifest


def check_manifest_identity(manifest: dict, policy: str, version: str, where: str) -> None:
    """The manifest must name the policy and version it was fetched as (no swapped folders)."""
    if manifest.get("version") != version or manifest.get("policy") != policy:
        raise BundleVerificationError(
            f"{where}/{MANIFEST_NAME}: names policy {manifest.get('policy')!r} version "
            f"{manifest.get('version')!r}, but the folder is {policy}/{version}"
        )


def read_bundle_bytes(path: str | Path) -> tuple[bytes, dict[str, bytes]]:
    """The raw bytes of a bundle folder, unverified: (manifest bytes, {file name: bytes})."""
    path = Path(path)
    if not path.is_dir():
        raise BundleVerificationError(f"{path}: bundle folder does not exist")
    try:
        manifest_bytes = (path / MANIFEST_NAME).read_bytes()
    except FileNotFoundError:
        raise BundleVerificationError(f"{path}/{MANIFEST_NAME}: missing") from None
    except OSError as exc:
        raise BundleVerificationError(f"{path}/{MANIFEST_NAME}: unreadable ({exc})") from exc
    files = {}
    for p in sorted(path.iterdir()):
        if p.name == MANIFEST_NAME:
            continue
        if not p.is_file() or p.is_symlink():
            raise BundleVerificationError(f"{path}: unexpected entry {p.name!r} (not a regular file)")
        try:
            files[p.name] = p.read_bytes()
        except OSError as exc:
            raise BundleVerificationError(f"{path}/{p.name}: unreadable ({exc})") from exc
    return manifest_bytes, files


def read_bundle(path: str | Path) -> tuple[dict, dict[str, bytes]]:
    """Read and verify (hashes, names) a bundle folder: (manifest, {file name: bytes}).

    Every file is read once and verified from memory, so what the caller parses is
    exactly what was hashed, even if the folder changes meanwhile. Signatures are
    checked by ``qres_client.signing`` (the client does both).
    """
    path = Path(path)
    manifest_bytes, files = read_bundle_bytes(path)
    manifest = verify_files(manifest_bytes, files, str(path))
    check_manifest_identity(manifest, path.parent.name, path.name, str(path))
    return manifest, files


def verify_bundle(path: str | Path) -> dict:
    """Verify a bundle folder and return its manifest; BundleVerificationError otherwise."""
    manifest, _ = read_bundle(path)
    return manifest
