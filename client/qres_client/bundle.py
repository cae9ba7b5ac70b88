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

This module is the format and its readers; the publisher that writes it (lock, temp folder,
rename, LATEST, retention) is ``policies.bundle.store`` in the pipeline. Only the standard
library and ``qres_client.errors`` are imported here (plus pyarrow, lazily, in
:func:`encode_parquet`): the runtime client depends on this module.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Mapping
from pathlib import Path

from qres_client.errors import BundleVerificationError

__all__ = [
    "BUNDLE_SCHEMA_VERSION",
    "MANIFEST_NAME",
    "LATEST_NAME",
    "DECISIONS_FILE",
    "POLICY_FILE",
    "FALLBACK_FILE",
    "HEALTH_FILE",
    "TIERS_FILE",
    "TIERS_TABLE_FILE",
    "TMP_PREFIX",
    "RESERVED_FIELDS",
    "read_latest",
    "verify_bundle",
    "verify_files",
    "read_bundle",
    "list_versions",
    "encode_json",
    "encode_parquet",
    "signing_payload",
    "read_bundle_bytes",
    "check_manifest_identity",
    "version_number",
    "check_name",
    "parse_json",
    "KNOWN_FAMILIES",
    "MAX_MANIFEST_BYTES",
]

BUNDLE_SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
LATEST_NAME = "LATEST"
# The files a version may hold (its manifest lists which): one name each, used by writer and readers.
DECISIONS_FILE = "decisions.parquet"  # every family: one row per (scenario, subject), ranked
POLICY_FILE = "policy.json"  # every family: the same decisions as JSON, with the scenarios' facts
FALLBACK_FILE = "fallback.json"  # shedding: the model the runtime greedy plans unmatched states with
HEALTH_FILE = "health.json"  # shedding: the runtime health-score parameters
TIERS_FILE = "tiers.json"  # shedding: the robust tier assignment, with its figures
TIERS_TABLE_FILE = "tiers.parquet"  # shedding: the tier assignment, one row per workload
# The policy families the pipeline publishes: what an http(s) client probes for (a static server
# cannot list folders; a LATEST that answers 404 just means "not published there").
KNOWN_FAMILIES = ("shedding", "standby", "routing")
MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # a manifest lists a few files; anything bigger is refused unread
TMP_PREFIX = ".tmp-"  # a publisher's folder or file in progress: readers ignore it
# Keys the publisher writes itself; a caller may not override them.
RESERVED_FIELDS = ("schema_version", "policy", "version", "created_at", "files", "signatures")
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_VERSION_RE = re.compile(r"v(\d{6,18})")  # bounded: int() of 5,000 digits raises


def encode_json(obj: object) -> bytes:
    """Deterministic JSON bytes (sorted keys, compact, UTF-8, trailing newline).

    NaN and infinities are refused (ValueError): they are not JSON and would not
    round-trip through other readers.
    """
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def parse_json(data: bytes, where: str, *, max_bytes: int = MAX_MANIFEST_BYTES) -> object:
    """Parse untrusted JSON bytes; any failure (size, UTF-8, syntax, NaN, nesting, huge ints) is a
    BundleVerificationError, never a ValueError or RecursionError that would escape a refresh."""
    if len(data) > max_bytes:
        raise BundleVerificationError(f"{where}: {len(data)} bytes, more than the {max_bytes} allowed")
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError, MemoryError) as exc:
        raise BundleVerificationError(f"{where}: not valid JSON ({type(exc).__name__}: {str(exc)[:200]})") from None


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


def check_name(kind: str, name: object) -> str:
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


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_latest(store: str | Path, policy: str) -> str | None:
    """The version ``LATEST`` names, or None when the policy has never been published."""
    path = Path(store) / check_name("policy", policy) / LATEST_NAME
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


def list_versions(store: str | Path, policy: str) -> list[str]:
    """Published versions of ``policy``, oldest first (temp folders are never listed)."""
    policy_dir = Path(store) / check_name("policy", policy)
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
    manifest = parse_json(manifest_bytes, f"{where}/{MANIFEST_NAME}")
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
            or type(entry.get("bytes")) is not int
            or not 0 <= entry["bytes"] < 1 << 53
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
