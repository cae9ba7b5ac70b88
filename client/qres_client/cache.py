"""The client's disk cache: the last verified bundle of each policy, to start without the store.

Layout: ``<cache>/<policy>/<version>/`` holds the bundle bytes exactly as fetched, and
``<cache>/<policy>/CURRENT`` names the version to start from. Writes go through a
``.tmp-*`` folder and a rename, CURRENT last, so a crash never leaves a half-written
version that looks complete. What is read back is *re-verified* by the client (hashes
and signatures): the cache is a convenience, never a trust anchor.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from pathlib import Path

from qres_client.bundle import MANIFEST_NAME, read_bundle_bytes, version_number
from qres_client.errors import BundleVerificationError

__all__ = ["DiskCache"]

_CURRENT = "CURRENT"
_KEEP = 2  # the current version and the one before it


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


class DiskCache:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def policies(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / _CURRENT).is_file())

    def save(self, policy: str, version: str, manifest_bytes: bytes, files: dict[str, bytes]) -> None:
        """Keep a verified bundle; errors are the caller's to log (the cache is best effort)."""
        pdir = self.root / policy
        pdir.mkdir(parents=True, exist_ok=True)
        final = pdir / version
        if not final.is_dir():
            tmp = pdir / f".tmp-{version}-{secrets.token_hex(4)}"
            tmp.mkdir()
            try:
                for name, data in files.items():
                    _write_file(tmp / name, data)
                _write_file(tmp / MANIFEST_NAME, manifest_bytes)
                os.rename(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        pointer = pdir / f".tmp-{_CURRENT}-{secrets.token_hex(4)}"
        _write_file(pointer, (version + "\n").encode("ascii"))
        os.replace(pointer, pdir / _CURRENT)
        self._prune(pdir, version)

    def _prune(self, pdir: Path, current: str) -> None:
        names = sorted((n, p) for p in pdir.iterdir() if (n := version_number(p.name)) is not None)
        for _, p in names[:-_KEEP]:
            if p.name != current:
                shutil.rmtree(p, ignore_errors=True)
        for p in pdir.glob(".tmp-*"):
            with contextlib.suppress(OSError):
                (shutil.rmtree(p) if p.is_dir() else p.unlink())

    def load(self, policy: str) -> tuple[str, bytes, dict[str, bytes]] | None:
        """(version, manifest bytes, files) of the cached CURRENT version, unverified; None if absent."""
        pdir = self.root / policy
        try:
            version = (pdir / _CURRENT).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        if version_number(version) is None:
            return None
        try:
            manifest_bytes, files = read_bundle_bytes(pdir / version)
        except BundleVerificationError:
            return None
        return version, manifest_bytes, files
