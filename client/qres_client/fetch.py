"""Where a client gets bundles from: a store folder or any static http(s) server.

Both sources return *unverified* bytes; the client verifies hashes and signatures of
exactly the bytes it then parses. Failures to reach the store (connection refused,
timeout, HTTP 5xx, unreadable folder) raise :class:`StoreUnavailableError`, so the
client can tell "keep serving what I have" apart from "this bundle is bad".

An http(s) store is the store folder served as-is (``python -m http.server``, nginx,
S3 static hosting): ``<url>/<policy>/LATEST``, ``<url>/<policy>/<version>/manifest.json``
and the files the manifest lists. Only the standard library (urllib) is used.

Nothing read here is trusted yet, so every read is bounded: a LATEST of at most 64 bytes, a
manifest of at most ``MAX_MANIFEST_BYTES``, at most :attr:`Limits.max_files` files and
:attr:`Limits.max_total_bytes` in total, both checked from the manifest's declared sizes
*before* any file is downloaded and enforced again while reading (a file longer than it
declared is cut off and refused), and one deadline for the whole refresh (checked between
reads, so a store that trickles one byte a second is abandoned at the deadline plus at most
one socket timeout). Discovery over http(s): a static server cannot list folders, so the
source probes the LATEST of every family in ``KNOWN_FAMILIES`` (plus any ``policies`` given);
one that answers 404 is simply not published there.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from qres_client.bundle import (
    KNOWN_FAMILIES,
    LATEST_NAME,
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    parse_json,
    read_latest,
    version_number,
)
from qres_client.errors import BundleVerificationError, QresError

__all__ = [
    "BundleSource",
    "FolderSource",
    "HttpSource",
    "Limits",
    "RefreshDeadlineError",
    "StoreUnavailableError",
    "make_source",
    "parse_latest",
]

_LATEST_MAX = 64
_CHUNK = 64 * 1024


class StoreUnavailableError(QresError):
    """The bundle store could not be reached or read (down, timeout, server error)."""


class RefreshDeadlineError(StoreUnavailableError):
    """A refresh ran past its overall deadline (a store that answers too slowly)."""


@dataclass(frozen=True)
class Limits:
    """Bounds on what one refresh may read from a store it does not trust yet."""

    max_files: int = 32  # files per bundle (today's bundles hold at most 6)
    max_total_bytes: int = 512 * 1024 * 1024  # all files of one bundle together
    deadline_s: float = 60.0  # one whole refresh (every family), connect to last byte


class BundleSource(Protocol):
    def list_policies(self) -> list[str]: ...
    def latest(self, policy: str) -> str | None: ...
    def fetch(self, policy: str, version: str) -> tuple[bytes, dict[str, bytes]]: ...
    def start(self, deadline: float) -> None: ...


def parse_latest(text: bytes, where: str) -> str:
    """A LATEST file's content -> version name; BundleVerificationError when malformed."""
    version = text[:_LATEST_MAX].decode("ascii", "replace").strip()
    if version_number(version) is None or text != (version + "\n").encode("ascii"):
        raise BundleVerificationError(
            f"{where}: LATEST must hold one version name like 'v000001' and a newline, got {text[:40]!r}"
        )
    return version


def declared_sizes(manifest_bytes: bytes, limits: Limits, where: str) -> dict[str, int]:
    """The files a manifest lists with their declared sizes, refused when over the limits."""
    listed = parse_json(manifest_bytes, f"{where}/{MANIFEST_NAME}")
    listed = listed.get("files") if isinstance(listed, dict) else None
    if not isinstance(listed, dict):
        raise BundleVerificationError(f"{where}/{MANIFEST_NAME}: not a bundle manifest")
    if len(listed) > limits.max_files:
        raise BundleVerificationError(
            f"{where}/{MANIFEST_NAME}: lists {len(listed)} files, more than max_files={limits.max_files}; refused"
        )
    sizes = {}
    for name, entry in listed.items():
        size = entry.get("bytes") if isinstance(entry, dict) else None
        if not isinstance(name, str) or "/" in name or name.startswith(".") or name == MANIFEST_NAME:
            raise BundleVerificationError(f"{where}/{MANIFEST_NAME}: bad file name {name!r}")
        if type(size) is not int or size < 0:
            raise BundleVerificationError(f"{where}/{MANIFEST_NAME}: {name!r} has no valid 'bytes' size")
        sizes[name] = size
    total = sum(sizes.values())
    if total > limits.max_total_bytes:
        raise BundleVerificationError(
            f"{where}/{MANIFEST_NAME}: declares {total} bytes in all, more than "
            f"max_total_bytes={limits.max_total_bytes}; refused before downloading"
        )
    return sizes


class FolderSource:
    """Bundles in a local (or mounted) store folder."""

    def __init__(self, root: Path, limits: Limits | None = None) -> None:
        self.root, self.limits = root, limits or Limits()

    def __repr__(self) -> str:
        return f"FolderSource({str(self.root)!r})"

    def start(self, deadline: float) -> None:
        """Local reads are bounded by the size caps; no deadline needed."""

    def list_policies(self) -> list[str]:
        try:
            if not self.root.is_dir():
                return []
            return sorted(p.name for p in self.root.iterdir() if (p / LATEST_NAME).is_file())
        except OSError as exc:
            raise StoreUnavailableError(f"{self.root}: cannot list the store ({exc})") from exc

    def latest(self, policy: str) -> str | None:
        try:
            path = self.root / policy / LATEST_NAME
            if path.is_file() and path.stat().st_size > _LATEST_MAX:
                raise BundleVerificationError(f"{path}: larger than {_LATEST_MAX} bytes; not a LATEST file")
            return read_latest(self.root, policy)
        except OSError as exc:
            raise StoreUnavailableError(f"{self.root / policy / LATEST_NAME}: unreadable ({exc})") from exc
        except ValueError as exc:  # a policy name that is not one (check_name)
            raise BundleVerificationError(str(exc)) from None

    def fetch(self, policy: str, version: str) -> tuple[bytes, dict[str, bytes]]:
        path = self.root / policy / version
        if not path.is_dir():
            raise BundleVerificationError(
                f"{self.root / policy / LATEST_NAME} points at {version}, but {path} does not exist"
            )
        if not (path / MANIFEST_NAME).is_file():
            raise BundleVerificationError(f"{path}/{MANIFEST_NAME}: missing")
        try:
            manifest_bytes = _read_capped(path / MANIFEST_NAME, MAX_MANIFEST_BYTES)
            sizes = declared_sizes(manifest_bytes, self.limits, str(path))
            extra = sorted(p.name for p in path.iterdir() if p.name != MANIFEST_NAME and p.name not in sizes)
            if extra:
                raise BundleVerificationError(f"{path}: unexpected file(s) not in the manifest: {extra[:10]}")
            files = {}
            for name, size in sorted(sizes.items()):
                p = path / name
                if not p.is_file() or p.is_symlink():
                    raise BundleVerificationError(f"{path}: file(s) listed in the manifest are missing: [{name!r}]")
                files[name] = _read_capped(p, size)
        except OSError as exc:
            raise BundleVerificationError(f"{path}: unreadable ({exc})") from exc
        return manifest_bytes, files


def _read_capped(path: Path, limit: int) -> bytes:
    with path.open("rb") as f:
        if os.fstat(f.fileno()).st_size > limit:
            raise BundleVerificationError(f"{path}: larger than the {limit} bytes its manifest allows; refused")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise BundleVerificationError(f"{path}: larger than the {limit} bytes its manifest allows; refused")
    return data


class HttpSource:
    """Bundles under an http(s) base URL (every family in KNOWN_FAMILIES plus ``policies``)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 5.0,
        policies: tuple[str, ...] | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.timeout_s = timeout_s
        self.policies = sorted(set(KNOWN_FAMILIES) | set(policies or ()))
        self.limits = limits or Limits()
        self._deadline: float | None = None

    def __repr__(self) -> str:
        return f"HttpSource({self.base_url!r})"

    def start(self, deadline: float) -> None:
        """Every read until the next start() must finish before ``deadline`` (time.monotonic)."""
        self._deadline = deadline

    def _left(self, url: str) -> float:
        if self._deadline is None:
            return self.timeout_s
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise RefreshDeadlineError(
                f"{url}: refresh deadline of {self.limits.deadline_s:g} s passed; the store is too slow"
            )
        return min(self.timeout_s, left)

    def _get(self, rel: str, limit: int, *, missing_ok: bool = False) -> bytes | None:
        # Imported here: urllib.request (http.client, ssl, email) is a tenth of `qres decide`'s
        # start-up, and a store folder never needs it.
        import http.client
        import urllib.error
        import urllib.parse
        import urllib.request

        url = urllib.parse.urljoin(self.base_url, "/".join(urllib.parse.quote(p) for p in rel.split("/")))
        request = urllib.request.Request(url, headers={"Cache-Control": "no-cache", "User-Agent": "qres-client"})  # noqa: S310 - make_source builds HttpSource for http(s) URLs only
        try:
            with urllib.request.urlopen(request, timeout=self._left(url)) as resp:  # noqa: S310 - http(s) only
                declared = resp.headers.get("Content-Length", "")
                if declared.isdigit() and len(declared) < 20 and int(declared) > limit:
                    raise BundleVerificationError(f"{url}: {declared} bytes, more than the {limit} allowed; refused")
                chunks, total = [], 0
                while chunk := resp.read1(min(_CHUNK, limit + 1 - total)):
                    total += len(chunk)
                    chunks.append(chunk)
                    if total > limit:
                        raise BundleVerificationError(f"{url}: more than the {limit} bytes allowed; refused")
                    self._left(url)
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and missing_ok:
                return None
            if exc.code == 404:
                raise BundleVerificationError(f"{url}: not found (HTTP 404); the bundle is incomplete") from None
            raise StoreUnavailableError(f"{url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, TimeoutError, OSError, http.client.HTTPException, ValueError) as exc:
            raise StoreUnavailableError(f"{url}: store unreachable ({getattr(exc, 'reason', exc)})") from None
        return b"".join(chunks)

    def list_policies(self) -> list[str]:
        return list(self.policies)

    def latest(self, policy: str) -> str | None:
        data = self._get(f"{policy}/{LATEST_NAME}", _LATEST_MAX, missing_ok=True)
        return None if data is None else parse_latest(data, f"{self.base_url}{policy}/{LATEST_NAME}")

    def fetch(self, policy: str, version: str) -> tuple[bytes, dict[str, bytes]]:
        where = f"{self.base_url}{policy}/{version}"
        manifest_bytes = self._get(f"{policy}/{version}/{MANIFEST_NAME}", MAX_MANIFEST_BYTES)
        sizes = declared_sizes(manifest_bytes, self.limits, where)
        files = {}
        for name, size in sorted(sizes.items()):
            files[name] = self._get(f"{policy}/{version}/{name}", size)
        return manifest_bytes, files


def make_source(
    source: str | Path, *, timeout_s: float, policies: tuple[str, ...] | None, limits: Limits | None = None
) -> BundleSource:
    if isinstance(source, str) and source.startswith(("http://", "https://")):
        return HttpSource(source, timeout_s=timeout_s, policies=policies, limits=limits)
    if isinstance(source, str) and "://" in source:
        raise ValueError(f"bundle source {source!r}: use a folder path or an http(s) URL")
    return FolderSource(Path(source), limits)
