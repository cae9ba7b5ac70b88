"""A content-addressed cache of solve results, so a re-solve reuses what did not change.

The key of a problem (:func:`content_cache_key`) is the sha256 of its whole content (every
field of the problem dataclass: arrays, sparse matrices; not its key, since a problem's seed
comes from its content and equal problems share one answer), the run seed and the solver
settings: an incident re-run that leaves a scenario's problem unchanged gets the nightly's
answer back without solving, and any change in the data, seed or settings is a miss. Keys
never depend on DataFrames or object ids (Prefect's default hashing of frames is unreliable),
and the solvers are deterministic for a given key, so a hit returns exactly what a fresh solve
would: the bundle bytes do not depend on the cache. Every family uses it, each under
``<state_dir>/cache/<family>``.

Entries are a JSON tree with arrays as raw bytes beside it (``tasks.support.safe_codec``:
nothing read back can run code), each behind an HMAC-SHA256 under a key kept beside the signing key
(``<key_dir>/qres-cache.key``, 0600, made on first use): a shared state folder's cache cannot
inject values either. A tampered entry is ignored with a warning and recomputed; delete the
folder to clear the cache.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from policies.solve.digest import feed_digest, problem_digest
from policies.solve.portfolio import PortfolioResult
from tasks.support.safe_codec import CodecError, decode, encode_chunks

__all__ = [
    "content_cache_key",
    "load_cached_results",
    "store_cached_results",
    "solve_cached",
    "entry_paths",
    "cache_key_path",
    "KEY_DIR_ENV",
]

ENTRY_SUFFIX = ".json"
CACHE_KEY_NAME = "qres-cache.key"
KEY_DIR_ENV = "QRES_CACHE_KEY_DIR"
_log = logging.getLogger("qres.cache")


def content_cache_key(family: str, problem, *, seed: int, settings: dict) -> str:
    """sha256 over a family problem's content but its key (:func:`problem_digest`), seed and settings.

    The standby, routing and tier problems are pure data, so equal keys mean equal problems,
    and their portfolio solves are deterministic for a given seed and settings.
    """
    h = hashlib.sha256(f"{family}-v2".encode())
    feed_digest(h, {"seed": seed, "settings": settings})
    h.update(problem_digest(problem).encode())
    return h.hexdigest()


def solve_cached(cache_dir: Path | None, key: str, solve: Callable[[], object]) -> tuple[object, bool]:
    """(``solve()``'s answer, whether it came from the cache); a miss is solved and stored."""
    found = load_cached_results(cache_dir, [key])
    if key in found:
        return found[key], True
    result = solve()
    store_cached_results(cache_dir, {key: result})
    return result, False


def load_cached_results(cache_dir: Path | None, keys: Sequence[str]) -> dict[str, PortfolioResult]:  # or any value
    """The cached results among ``keys``; missing, tampered or undecodable entries count as misses.

    An entry is used only when its HMAC (the key beside the signing key) matches its key and
    bytes; anything else is ignored with a warning and recomputed. Pickles are never loaded.
    """
    found: dict[str, PortfolioResult] = {}
    if cache_dir is None:
        return found
    secret = None
    for key in keys:
        folder = Path(cache_dir) / key[:2]
        path = folder / f"{key}{ENTRY_SUFFIX}"
        try:
            data = path.read_bytes()
        except OSError:
            if (folder / f"{key}.pkl").exists():
                _log.warning("ignored a pickle in the solve cache (never loaded): %s", folder / f"{key}.pkl")
            continue
        secret = secret or cache_secret(cache_dir)
        head, _, payload = data.partition(b"\n")
        if not hmac.compare_digest(head, _mac(secret, key, payload)):
            _log.warning("ignored a solve cache entry that fails its HMAC (recomputed): %s", path)
            continue
        try:
            found[key] = decode(payload)
        except CodecError as exc:
            _log.warning("ignored an undecodable solve cache entry (recomputed): %s: %s", path, exc)
    return found


def store_cached_results(cache_dir: Path | None, results: dict[str, object]) -> None:
    """Write authenticated JSON entries atomically (temp file + rename); values that cannot be encoded are skipped."""
    if cache_dir is None:
        return
    secret = cache_secret(cache_dir)
    for key, result in results.items():
        folder = Path(cache_dir) / key[:2]
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        try:
            # Streamed: the payload goes to the file and the HMAC piece by piece, and the MAC
            # (fixed-width hex) is written over its placeholder at the end: same bytes as
            # ``_mac(...) + b"\n" + encode(result)``, without the whole entry in memory.
            mac = hmac.new(secret, key.encode() + b"\n", hashlib.sha256)
            with os.fdopen(fd, "wb") as fh:
                fh.write(b"0" * (2 * mac.digest_size) + b"\n")
                for piece in encode_chunks(result):
                    mac.update(piece)
                    fh.write(piece)
                fh.seek(0)
                fh.write(mac.hexdigest().encode())
            os.replace(tmp, folder / f"{key}{ENTRY_SUFFIX}")
        except CodecError as exc:
            Path(tmp).unlink(missing_ok=True)
            _log.warning("not cached: %s", exc)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def entry_paths(cache_dir: Path) -> list[Path]:
    """Every stored entry (for pruning)."""
    return sorted(Path(cache_dir).glob(f"*/*{ENTRY_SUFFIX}"))


def cache_key_path(cache_dir: Path) -> Path:
    """``$QRES_CACHE_KEY_DIR/qres-cache.key`` (set by the flows to ``bundle.key_dir``), else
    ``<state_dir>/keys/qres-cache.key`` for a cache at ``<state_dir>/cache/<name>``."""
    configured = os.environ.get(KEY_DIR_ENV)
    key_dir = Path(configured) if configured else Path(cache_dir).resolve().parent.parent / "keys"
    return key_dir / CACHE_KEY_NAME


def cache_secret(cache_dir: Path) -> bytes:
    """The HMAC key of the cache, created on first use (32 random bytes, mode 0600)."""
    path = cache_key_path(cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = bytes.fromhex(path.read_text().strip())
        if len(secret) < 32:
            raise ValueError(f"{path}: cache key shorter than 32 bytes") from None
        return secret
    secret = secrets.token_bytes(32)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret.hex() + "\n")
    return secret


def _mac(secret: bytes, key: str, payload: bytes) -> bytes:
    return hmac.new(secret, key.encode() + b"\n" + payload, hashlib.sha256).hexdigest().encode()
