"""Bundles through The Update Framework (python-tuf): freshness, rollback, rotation, revocation.

Install ``qresilience-client[tuf]``. The store holds TUF metadata under ``<store>/tuf/``
(``N.root.json``, ``timestamp.json``, ``snapshot.json``, ``targets.json``; written by the
pipeline, ``policies.bundle.tuf_repo``) and every bundle file plus each family's ``LATEST`` is
a TUF target (path relative to the store). A :class:`TufSource` starts every refresh from
the trusted root it was given (stateless: nothing on disk; or from ``metadata_dir`` when the
caller keeps state) and lets ``tuf.ngclient.Updater`` walk root versions, then timestamp,
snapshot and targets, refusing expired metadata (a freeze), older versions than already seen,
and signatures short of a role's threshold. Every role's threshold is 2 over one Ed25519 and
one ML-DSA-65 key (securesystemslib's ML-DSA support, TAP 21), so both signatures are needed.
LATEST and every file are then checked against their signed length and hashes; the bundle
manifest's own Ed25519 + ML-DSA-65 signatures are still checked by the client afterwards.

Errors: anything TUF refuses is a :class:`BundleVerificationError` naming TUF's reason
(``ExpiredMetadataError``, ``UnsignedMetadataError``, ``BadVersionNumberError``,
``LengthOrHashMismatchError``); a store that cannot be reached is ``StoreUnavailableError``.
"""

from __future__ import annotations

import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from tuf.api import exceptions as tuf_errors
from tuf.ngclient import Updater, UpdaterConfig
from tuf.ngclient.fetcher import FetcherInterface

from qres_client.bundle import KNOWN_FAMILIES, LATEST_NAME, MANIFEST_NAME, MAX_MANIFEST_BYTES
from qres_client.errors import BundleVerificationError
from qres_client.fetch import HttpSource, Limits, StoreUnavailableError, declared_sizes, parse_latest

__all__ = ["TufSource", "TUF_FOLDER", "tuf_source"]

TUF_FOLDER = "tuf"


class _Fetcher(FetcherInterface):
    """file:// for folder stores, else the bounded, deadline-aware HTTP reads of HttpSource."""

    def __init__(self, http: HttpSource | None) -> None:
        self.http = http

    def _fetch(self, url: str) -> Iterator[bytes]:
        if url.startswith("file://"):
            path = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path))
            if not path.is_file():
                raise tuf_errors.DownloadHTTPError(f"{path}: not found", 404)
            return iter([path.read_bytes()])
        rel = url[len(self.http.base_url) :]
        data = self.http._get(rel, 64 * 1024 * 1024, missing_ok=True)
        if data is None:
            raise tuf_errors.DownloadHTTPError(f"{url}: not found", 404)
        return iter([data])


class TufSource:
    """A bundle store read through TUF, trusting only ``trusted_root`` (root.json bytes)."""

    def __init__(
        self,
        store: str | Path,
        trusted_root: bytes,
        *,
        timeout_s: float = 5.0,
        policies: tuple[str, ...] | None = None,
        limits: Limits | None = None,
        metadata_dir: str | Path | None = None,
    ) -> None:
        self.limits = limits or Limits()
        if isinstance(store, str) and store.startswith(("http://", "https://")):
            self.http: HttpSource | None = HttpSource(store, timeout_s=timeout_s, limits=self.limits)
            self.base_url = self.http.base_url
        else:
            self.http, self.base_url = None, Path(store).resolve().as_uri() + "/"
        self.trusted_root, self.metadata_dir = trusted_root, metadata_dir
        self.policies = sorted(set(KNOWN_FAMILIES) | set(policies or ()))
        self._updater: Updater | None = None
        self._fetcher = _Fetcher(self.http)

    def __repr__(self) -> str:
        return f"TufSource({self.base_url!r})"

    def start(self, deadline: float) -> None:
        """A new refresh: fresh TUF metadata from the trusted root (or the kept state)."""
        if self.http is not None:
            self.http.start(deadline)
        self._updater = None

    def _trusted(self) -> Updater:
        if self._updater is not None:
            return self._updater
        if self.metadata_dir is None:
            folder = tempfile.mkdtemp(prefix="qres-tuf-")  # stateless: forgotten after this refresh
        else:
            folder = str(Path(self.metadata_dir))
            Path(folder).mkdir(parents=True, exist_ok=True)
        bootstrap = None if (Path(folder) / "root.json").is_file() else self.trusted_root
        try:
            updater = Updater(
                metadata_dir=folder,
                metadata_base_url=f"{self.base_url}{TUF_FOLDER}/",
                target_base_url=self.base_url,
                fetcher=self._fetcher,
                config=UpdaterConfig(prefix_targets_with_hash=False),
                bootstrap=bootstrap,
            )
            updater.refresh()
        except Exception as exc:  # noqa: BLE001 - mapped below: TUF's refusals and download failures
            raise _mapped(exc, f"{self!r}: TUF metadata") from None
        self._updater = updater
        return updater

    def _target(self, path: str, *, limit: int, missing_ok: bool = False) -> bytes | None:
        updater = self._trusted()
        info = updater.get_targetinfo(path)
        if info is None:
            if missing_ok:
                return None
            raise BundleVerificationError(f"{self!r}: {path} is not a signed TUF target; refused")
        if info.length > limit:
            raise BundleVerificationError(f"{self!r}: {path} is {info.length} bytes, more than {limit}; refused")
        try:
            data = self._fetcher.download_bytes(f"{self.base_url}{path}", info.length)
            info.verify_length_and_hashes(data)
        except Exception as exc:  # noqa: BLE001 - mapped below
            raise _mapped(exc, f"{self!r}: {path}") from None
        return data

    def list_policies(self) -> list[str]:
        return list(self.policies)

    def latest(self, policy: str) -> str | None:
        data = self._target(f"{policy}/{LATEST_NAME}", limit=64, missing_ok=True)
        return None if data is None else parse_latest(data, f"{self!r} {policy}/{LATEST_NAME}")

    def fetch(self, policy: str, version: str) -> tuple[bytes, dict[str, bytes]]:
        where = f"{self!r} {policy}/{version}"
        manifest = self._target(f"{policy}/{version}/{MANIFEST_NAME}", limit=MAX_MANIFEST_BYTES)
        sizes = declared_sizes(manifest, self.limits, where)
        files = {name: self._target(f"{policy}/{version}/{name}", limit=size) for name, size in sorted(sizes.items())}
        return manifest, files


def _mapped(exc: Exception, where: str) -> Exception:
    if isinstance(exc, tuf_errors.RepositoryError):
        reason = {
            tuf_errors.ExpiredMetadataError: "expired metadata (a freeze: the repository stopped signing fresh "
            "timestamps, or this is a replay of old metadata)",
            tuf_errors.BadVersionNumberError: "a version older than one already trusted (rollback)",
            tuf_errors.UnsignedMetadataError: "signatures short of the threshold (both an Ed25519 and an "
            "ML-DSA-65 signature by a key the trusted root lists; a revoked key no longer counts)",
            tuf_errors.LengthOrHashMismatchError: "length or hashes differ from the signed targets metadata",
        }
        why = next((text for cls, text in reason.items() if isinstance(exc, cls)), "refused by TUF")
        return BundleVerificationError(f"{where}: {type(exc).__name__}: {why}: {exc}")
    if isinstance(exc, tuf_errors.DownloadHTTPError) and exc.status_code == 404:
        return BundleVerificationError(f"{where}: missing from the store (404): {exc}")
    if isinstance(exc, BundleVerificationError | StoreUnavailableError):
        return exc
    if isinstance(exc, tuf_errors.DownloadError):
        cause = exc.__cause__ if isinstance(exc.__cause__, BundleVerificationError | StoreUnavailableError) else None
        return cause or StoreUnavailableError(f"{where}: download failed ({exc})")
    return BundleVerificationError(f"{where}: {type(exc).__name__}: {str(exc)[:300]}")


def tuf_source(store: str | Path, tuf_root: str | Path | bytes, cache_dir: str | Path | None, **kw) -> TufSource:
    """PolicyClient's TUF source: stateless without ``cache_dir``, else TUF state in ``<cache_dir>/tuf``."""
    root = tuf_root if isinstance(tuf_root, bytes) else Path(tuf_root).read_bytes()
    return TufSource(store, root, metadata_dir=None if cache_dir is None else Path(cache_dir) / "tuf", **kw)
