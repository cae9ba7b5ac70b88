"""The service dependency graph: what else goes down when something goes down."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

__all__ = ["hard_dependents", "close_down_set", "root_down_set"]


def hard_dependents(edges: Iterable[tuple[str, str, bool]]) -> dict[str, frozenset[str]]:
    """Map each service to the services that hard-depend on it directly.

    ``edges`` are ``(service_id, depends_on, hard)`` rows of the dependencies table.
    """
    out: dict[str, set[str]] = defaultdict(set)
    for service_id, depends_on, hard in edges:
        if hard:
            out[depends_on].add(service_id)
    return {k: frozenset(v) for k, v in out.items()}


def close_down_set(down: Iterable[str], dependents: Mapping[str, frozenset[str]]) -> frozenset[str]:
    """Everything that is down when ``down`` is: the closure over hard dependency edges."""
    seen = set(down)
    stack = list(seen)
    while stack:
        for nxt in dependents.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return frozenset(seen)


def root_down_set(down: Iterable[str], dependents: Mapping[str, frozenset[str]]) -> frozenset[str]:
    """The smallest subset of ``down`` whose closure explains all of ``down``.

    A service is dropped when another down service takes it down through hard
    edges. Cycles keep their lexicographically smallest member, so the result is
    deterministic.
    """
    down = frozenset(down)
    explained: set[str] = set()
    for s in sorted(down):
        if s in explained:
            continue
        others = close_down_set([s], dependents) - {s}
        explained |= others & down
    roots = down - explained
    # A cycle whose members all explain each other leaves no root: keep one per cycle.
    missing = down - close_down_set(roots, dependents)
    while missing:
        pick = min(missing)
        roots = roots | {pick}
        missing = down - close_down_set(roots, dependents)
    return frozenset(roots)
