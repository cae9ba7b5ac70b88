"""Dependency names a decide() call observes that no loaded bundle knows (typos, stale ids).

An observed name that appears in no scenario and not in the runtime greedy's model changes
nothing in the answer (the plan treats it as irrelevant), so ``down={"region-euwest"}`` would
silently answer "admit everything". ``unknown="warn"`` (the default) emits an
:class:`UnknownDependencyWarning` naming the closest known names (difflib), once per distinct
set of unknown names; ``"refuse"`` raises :class:`UnknownDependencyError` instead; ``"ignore"``
keeps the old silent behaviour. Only non-exact answers are checked: an exact match names known
services by construction, so the hot path costs nothing.
"""

from __future__ import annotations

import difflib
import warnings
import weakref
from collections.abc import Iterable

from qres_client.errors import QresError

__all__ = ["UNKNOWN_RULES", "UnknownDependencyError", "UnknownDependencyWarning", "known_names", "check_unknown"]

UNKNOWN_RULES = ("warn", "refuse", "ignore")


class UnknownDependencyError(QresError, ValueError):
    """decide() was given dependency names that no scenario and no model of the bundle knows."""


class UnknownDependencyWarning(UserWarning):
    """The observed state names dependencies the bundle does not know; they were ignored."""


def known_names(index) -> frozenset[str]:
    """Every dependency name a loaded index knows: scenario sets and the greedy model."""
    names: set[str] = set()
    for s in (*index.covers, index.fallback):
        names |= s.effective_down | s.degraded | s.down
    g = index.greedy
    if g is not None:
        names |= set(g.dependents)
        for deps in g.dependents.values():
            names |= deps
        names |= {r for r, _ in g.regions}
        for need, risks in zip(g.needs, g.risks):
            names |= need | {service for service, _ in risks}
    return frozenset(names)


_KNOWN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # loaded index -> its known names


def check_unknown(index, observed: Iterable[str], rule: str) -> None:
    """Warn about (or refuse) observed names ``index`` does not know, naming the closest known ones."""
    known = _KNOWN.get(index)
    if known is None:
        known = _KNOWN[index] = known_names(index)
    policy, version = index.policy, index.version
    unknown = sorted(set(observed) - known)
    if not unknown or rule == "ignore":
        return
    hints = []
    for name in unknown[:10]:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hints.append(f"{name!r} (closest known: {', '.join(close)})" if close else f"{name!r} (no close match)")
    message = (
        f"{policy} {version}: unknown dependency name(s) {'; '.join(hints)}; the bundle knows {len(known)} names, "
        "so these were ignored in the answer"
    )
    if rule == "refuse":
        raise UnknownDependencyError(message)
    warnings.warn(message, UnknownDependencyWarning, stacklevel=3)
