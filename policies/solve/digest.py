"""A canonical sha256 of a problem's content, so equal problems can be found across scenarios.

Two scenarios often give the same solver problem (an outage that blocks no workload leaves the
normal problem; two outages that block the same workloads give one problem). Solving such a
problem once and sharing the answer is only exact when the answer does not depend on the
problem's name: :meth:`policies.solve.family.Family.solve_each` therefore seeds each problem from
:func:`problem_digest` (its content without the key), not from its key.
"""

from __future__ import annotations

import hashlib
from dataclasses import fields, is_dataclass

import numpy as np
import scipy.sparse as sp

__all__ = ["feed_digest", "problem_digest", "problem_groups", "KEY_FIELDS"]

KEY_FIELDS = frozenset({"key", "scenario_key"})  # names, not content: left out of problem_digest


def problem_digest(problem: object) -> str:
    """sha256 over every field of ``problem`` (nested dataclasses too) except its key fields."""
    h = hashlib.sha256(b"problem-v1")
    feed_digest(h, problem, skip=KEY_FIELDS)
    return h.hexdigest()


def problem_groups(problems) -> list[list[int]]:
    """Indices of equal problems (same content but the key), grouped, in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(problems):
        groups.setdefault(problem_digest(p), []).append(i)
    return list(groups.values())


def feed_digest(h, obj, *, skip: frozenset[str] = frozenset()) -> None:
    """Feed ``obj`` to ``h`` canonically: arrays by dtype/shape/bytes, containers in order, never ids;
    dataclass fields named in ``skip`` are left out (at any depth)."""
    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        h.update(b"A" + str(arr.dtype).encode() + repr(arr.shape).encode() + arr.tobytes())
    elif sp.issparse(obj):
        m = sp.csr_matrix(obj)
        h.update(b"S" + repr(m.shape).encode())
        for arr in (m.data, m.indices, m.indptr):
            feed_digest(h, arr)
    elif is_dataclass(obj) and not isinstance(obj, type):
        h.update(b"D" + type(obj).__qualname__.encode())
        for f in fields(obj):
            if f.name in skip:
                continue
            h.update(f.name.encode())
            feed_digest(h, getattr(obj, f.name), skip=skip)
    elif isinstance(obj, dict):
        h.update(b"M" + str(len(obj)).encode())
        for k in sorted(obj, key=str):
            feed_digest(h, str(k), skip=skip)
            feed_digest(h, obj[k], skip=skip)
    elif isinstance(obj, (list, tuple)):
        h.update(b"L" + str(len(obj)).encode())
        for item in obj:
            feed_digest(h, item, skip=skip)
    else:  # scalars: repr keeps float bits exact (repr round-trips) and type apart ("1" vs 1)
        h.update(b"V" + type(obj).__name__.encode() + repr(obj).encode())
