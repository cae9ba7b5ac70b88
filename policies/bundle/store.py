"""Publishing to a bundle store: one writer at a time, atomic versions, a LATEST that moves last.

The format (names, manifest, hashes, how readers verify) is ``qres_client.bundle``; this is
the pipeline's writer. Every file is written and fsynced in a ``.tmp-*`` folder, the
manifest last, then the folder is renamed to its version name in one atomic step, and
``LATEST`` is replaced (temp file + ``os.replace``) only after that. A crash leaves either no
version folder or a complete one; the next publisher removes the leftovers. ``<policy>/.lock``
is held (flock) for a whole publish. A published version is never modified.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from qres_client.bundle import (
    BUNDLE_SCHEMA_VERSION,
    LATEST_NAME,
    MANIFEST_NAME,
    RESERVED_FIELDS,
    TMP_PREFIX,
    check_name,
    encode_json,
    read_latest,
    signing_payload,
    verify_bundle,
    version_number,
)
from qres_client.errors import BundleVerificationError

__all__ = ["PublishedBundle", "publish_bundle", "set_latest", "prune_versions"]

_LOCK_NAME = ".lock"


def _format_version(n: int) -> str:
    return f"v{n:06d}"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class PublishedBundle:
    policy: str
    version: str
    path: Path
    manifest: dict


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
    for p in policy_dir.glob(TMP_PREFIX + "*"):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


def _next_version(policy_dir: Path) -> str:
    # Every version-named folder counts, complete or not, so a number is never reused.
    numbers = [n for p in policy_dir.iterdir() if (n := version_number(p.name)) is not None]
    return _format_version(max(numbers, default=0) + 1)


def _write_latest(policy_dir: Path, version: str) -> None:
    tmp = policy_dir / f"{TMP_PREFIX}{LATEST_NAME}-{secrets.token_hex(4)}"
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
    check_name("policy", policy)
    if not files:
        raise ValueError("a bundle needs at least one file")
    for name, data in files.items():
        check_name("file", name)
        if name == MANIFEST_NAME or name == LATEST_NAME:
            raise ValueError(f"file name {name!r} is reserved by the bundle format")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"file {name!r}: expected bytes, got {type(data).__name__}")
    clash = sorted(set(manifest_fields) & set(RESERVED_FIELDS))
    if clash:
        raise ValueError(f"manifest_fields may not set {clash}: the publisher writes them")
    encode_json(dict(manifest_fields))  # fail before taking the lock if not serialisable

    policy_dir = Path(store) / policy
    with _policy_lock(policy_dir):
        _remove_stale_tmp(policy_dir)
        version = _next_version(policy_dir)
        tmp_dir = policy_dir / f"{TMP_PREFIX}{version}-{secrets.token_hex(4)}"
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
    names = sorted((n, p.name) for p in policy_dir.iterdir() if (n := version_number(p.name)) is not None)
    latest = read_latest(policy_dir.parent, policy_dir.name)
    spare = {latest, *protect}
    doomed = [name for _, name in names[:-keep] if name not in spare]
    for name in doomed:
        # Rename first (atomic), so no reader ever sees a half-deleted version folder.
        grave = policy_dir / f"{TMP_PREFIX}del-{name}-{secrets.token_hex(4)}"
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
    policy_dir = Path(store) / check_name("policy", policy)
    if not policy_dir.is_dir():
        return []
    with _policy_lock(policy_dir):
        return _prune_locked(policy_dir, keep, protect)


def set_latest(store: str | Path, policy: str, version: str, *, rollback: bool = False) -> None:
    """Point ``LATEST`` at an existing version after verifying it; never backwards unless ``rollback``.

    LATEST is monotone so that a slower concurrent run can never undo a newer publish; the
    documented rollback (``qres rollback``/``promote``) republishes the old bytes as a new,
    higher version instead, and ``rollback=True`` is for an operator who means it.
    """
    policy_dir = Path(store) / check_name("policy", policy)
    if version_number(version) is None:
        raise ValueError(f"bad version name {version!r}: expected e.g. 'v000001'")
    with _policy_lock(policy_dir):
        verify_bundle(policy_dir / version)
        try:
            current = read_latest(policy_dir.parent, policy_dir.name)
        except BundleVerificationError:
            current = None  # a damaged LATEST is repaired by pointing it at a verified version

        if not rollback and current is not None and version_number(version) < version_number(current):
            raise ValueError(
                f"{policy}: LATEST is {current}; refusing to move it back to {version} "
                "(use `qres rollback`, which republishes it as a new version)"
            )
        _write_latest(policy_dir, version)
