"""A content-addressed cache of solve results, so a re-solve reuses what did not change.

The key of a problem (:func:`content_cache_key`) is the sha256 of its whole content (every
field of the problem dataclass: arrays, sparse matrices, the key), the run seed and the solver
settings: an incident re-run that leaves a scenario's problem unchanged gets the nightly's
answer back without solving, and any change in the data, seed or settings is a miss. Keys
never depend on DataFrames or object ids (Prefect's default hashing of frames is unreliable),
and the solvers are deterministic for a given key, so a hit returns exactly what a fresh solve
would: the bundle bytes do not depend on the cache. Every family uses it, each under
``<state_dir>/cache/<family>``.

Entries are pickles written atomically; the folder is trusted like the rest of the state dir
(delete it to clear the cache).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import fields, is_dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from policies.solve.portfolio import PortfolioResult

__all__ = ["content_cache_key", "load_cached_results", "store_cached_results", "solve_cached"]


def _digest(h, obj) -> None:
    """Feed ``obj`` to ``h`` canonically: arrays by dtype/shape/bytes, containers in order, never ids."""
    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        h.update(b"A" + str(arr.dtype).encode() + repr(arr.shape).encode() + arr.tobytes())
    elif sp.issparse(obj):
        m = sp.csr_matrix(obj)
        h.update(b"S" + repr(m.shape).encode())
        for arr in (m.data, m.indices, m.indptr):
            _digest(h, arr)
    elif is_dataclass(obj) and not isinstance(obj, type):
        h.update(b"D" + type(obj).__qualname__.encode())
        for f in fields(obj):
            h.update(f.name.encode())
            _digest(h, getattr(obj, f.name))
    elif isinstance(obj, dict):
        h.update(b"M" + str(len(obj)).encode())
        for k in sorted(obj, key=str):
            _digest(h, str(k))
            _digest(h, obj[k])
    elif isinstance(obj, (list, tuple)):
        h.update(b"L" + str(len(obj)).encode())
        for item in obj:
            _digest(h, item)
    else:  # scalars: repr keeps float bits exact (repr round-trips) and type apart ("1" vs 1)
        h.update(b"V" + type(obj).__name__.encode() + repr(obj).encode())


def content_cache_key(family: str, problem, *, seed: int, settings: dict) -> str:
    """sha256 over a family problem's whole content (dataclasses, arrays, sparse matrices), seed and settings.

    The standby, routing and tier problems are pure data, so equal keys mean equal problems,
    and their portfolio solves are deterministic for a given seed and settings.
    """
    h = hashlib.sha256(f"{family}-v1".encode())
    _digest(h, {"seed": seed, "settings": settings})
    _digest(h, problem)
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
    """The cached results among ``keys``; unreadable entries count as misses."""
    found: dict[str, PortfolioResult] = {}
    if cache_dir is None:
        return found
    for key in keys:
        path = Path(cache_dir) / key[:2] / f"{key}.pkl"
        try:
            with path.open("rb") as fh:
                found[key] = pickle.load(fh)  # noqa: S301 - our own state dir
        except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError):
            continue
    return found


def store_cached_results(cache_dir: Path | None, results: dict[str, object]) -> None:
    """Write entries atomically (temp file + rename), so a crash leaves no half entry."""
    if cache_dir is None:
        return
    for key, result in results.items():
        folder = Path(cache_dir) / key[:2]
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                pickle.dump(result, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, folder / f"{key}.pkl")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
