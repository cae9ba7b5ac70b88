"""Where a client gets bundles from: a store folder or any static http(s) server.

Both sources return *unverified* bytes; the client verifies hashes and signatures of
exactly the bytes it then parses. Failures to reach the store (connection refused,
timeout, HTTP 5xx, unreadable folder) raise :class:`StoreUnavailableError`, so the
client can tell "keep serving what I have" apart from "this bundle is bad".

An http(s) store is the store folder served as-is (``python -m http.server``, nginx,
S3 static hosting): ``<url>/<policy>/LATEST``, ``<url>/<policy>/<version>/manifest.json``
and the files the manifest lists. Only the standard library (urllib) is used.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Protocol

from qres_client.bundle import LATEST_NAME, MANIFEST_NAME, read_bundle_bytes, read_latest, version_number
from qres_client.errors import BundleVerificationError, QresError

__all__ = ["BundleSource", "FolderSource", "HttpSource", "StoreUnavailableError", "make_source", "parse_latest"]

_MAX_FILE_BYTES = 512 * 1024 * 1024  # refuse absurd downloads before they fill memory


class StoreUnavailableError(QresError):
    """The bundle store could not be reached or read (down, timeout, server error)."""


class BundleSource(Protocol):
    def list_policies(self) -> list[str]: ...
    def latest(self, policy: str) -> str | None: ...
    def fetch(self, policy: str, version: str) -> tuple[bytes, dict[str, bytes]]: ...


def parse_latest(text: bytes, where: str) -> str:
    """A LATEST file's content -> version name; BundleVerificationError when malformed."""
    version = text.decode("ascii", "replace").strip()
    if version_number(version) is None or text != (version + "\n").encode("ascii"):
        raise BundleVerificationError(
            f"{where}: LATEST must hold one version name like 'v000001' and a newline, got {text[:40]!r}"
        )
    return version


class FolderSource:
    """Bundles in a local (or mounted) store folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __repr__(self) -> str:
        return f"FolderSource({str(self.root)!r})"

    def list_policies(self) -> list[str]:
        try:
            if not self.root.is_dir():
                return []
            return sorted(p.name for p in self.root.iterdir() if (p / LATEST_NAME).is_file())
        except OSError as exc:
            raise StoreUnavailableError(f"{self.root}: cannot list the store ({exc})") from exc

    def latest(self, policy: str) -> str | None:
        try:
            return read_latest(self.root, policy)
        except OSError as exc:
            raise StoreUnavailableError(f"{self.root / policy / LATEST_NAME}: unreadable ({exc})") from exc

    def fetch(self, policy: str, version: str) -> tuple[bytes, dict[str, bytes]]:
        path = self.root / policy / version
        if not path.is_dir():
            raise BundleVerificationError(
                f"{self.root / policy / LATEST_NAME} points at {version}, but {path} does not exist"
            )
        return read_bundle_bytes(path)


class HttpSource:
    """Bundles under an http(s) base URL; ``policies`` must be named (static servers cannot list)."""

    def __init__(self, base_url: str, *, timeout_s: float = 5.0, policies: tuple[str, ...] = ("shedding",)) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.timeout_s = timeout_s
        self.policies = list(policies)

    def __repr__(self) -> str:
        return f"HttpSource({self.base_url!r})"

    def _get(self, rel: str, *, missing_ok: bool = False) -> bytes | None:
        url = urllib.parse.urljoin(self.base_url, "/".join(urllib.parse.quote(p) for p in rel.split("/")))
        request = urllib.request.Request(url, headers={"Cache-Control": "no-cache", "User-Agent": "qres-client"})  # noqa: S310 - make_source builds HttpSource for http(s) URLs only
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:  # noqa: S310 - http(s) only
                data = resp.read(_MAX_FILE_BYTES + 1)
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and missing_ok:
                return None
            if exc.code == 404:
                raise BundleVerificationError(f"{url}: not found (HTTP 404); the bundle is incomplete") from None
            raise StoreUnavailableError(f"{url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise StoreUnavailableError(f"{url}: store unreachable ({getattr(exc, 'reason', exc)})") from None
        if len(data) > _MAX_FILE_BYTES:
            raise BundleVerificationError(f"{url}: larger than {_MAX_FILE_BYTES} bytes; refusing")
        return data

    def list_policies(self) -> list[str]:
        return list(self.policies)

    def latest(self, policy: str) -> str | None:
        data = self._get(f"{policy}/{LATEST_NAME}", missing_ok=True)
        return None if data is None else parse_latest(data, f"{self.base_url}{policy}/{LATEST_NAME}")

    def fetch(self, policy: str, version: str) -> tuple[bytes, dict[str, bytes]]:
        where = f"{self.base_url}{policy}/{version}"
        manifest_bytes = self._get(f"{policy}/{version}/{MANIFEST_NAME}")
        try:
            listed = json.loads(manifest_bytes).get("files")
        except (ValueError, AttributeError):
            listed = None
        if not isinstance(listed, dict):
            raise BundleVerificationError(f"{where}/{MANIFEST_NAME}: not a bundle manifest")
        files = {}
        for name in sorted(listed):
            if not isinstance(name, str) or "/" in name or name.startswith("."):
                raise BundleVerificationError(f"{where}/{MANIFEST_NAME}: bad file name {name!r}")
            files[name] = self._get(f"{policy}/{version}/{name}")
        return manifest_bytes, files


def make_source(source: str | Path, *, timeout_s: float, policies: tuple[str, ...] | None) -> BundleSource:
    if isinstance(source, str) and source.startswith(("http://", "https://")):
        return HttpSource(source, timeout_s=timeout_s, policies=policies or ("shedding",))
    if isinstance(source, str) and "://" in source:
        raise ValueError(f"bundle source {source!r}: use a folder path or an http(s) URL")
    return FolderSource(Path(source))
