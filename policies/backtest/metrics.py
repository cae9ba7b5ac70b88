"""Figures a backtest reports: tail loss (CVaR) over incidents and how far decisions move.

Kept apart from the replay engine so each figure can be checked by hand on a few numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["cvar", "kl_divergence", "share_or_none"]


def cvar(losses: Sequence[float], alpha: float = 0.95) -> float | None:
    """Mean of the worst ``1 - alpha`` share of equally likely losses (Rockafellar-Uryasev).

    With n losses the tail holds ``(1 - alpha) * n`` of them; a fractional last one counts
    with its fraction, and fewer than ``1 / (1 - alpha)`` losses give the largest loss, so
    with 20 incidents CVaR95 is the worst incident and CVaR90 the mean of the worst two.
    None when there are no losses.
    """
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"alpha must be within [0, 1), got {alpha!r}")
    x = np.sort(np.asarray(losses, dtype=np.float64))[::-1]
    if x.size == 0:
        return None
    if not np.all(np.isfinite(x)):
        raise ValueError("losses must be finite numbers")
    tail = max(round((1.0 - alpha) * x.size, 9), 1.0) if alpha > 0 else float(x.size)  # 0.05 * 20 is 0.9999...
    full = int(math.floor(tail + 1e-12))
    rest = tail - full
    total = float(x[:full].sum()) + (rest * float(x[full]) if rest > 1e-12 and full < x.size else 0.0)
    return total / tail


def kl_divergence(p: Sequence[float], q: Sequence[float], *, eps: float = 1e-6) -> float:
    """KL(p || q) in nats between two non-negative weight vectors, each normalized to sum 1.

    ``eps`` is added to every entry before normalizing so a workload admitted in one and
    shed in the other gives a large but finite number. Two all-zero vectors give 0.
    """
    a, b = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"p and q must have the same shape, got {a.shape} and {b.shape}")
    if np.any(a < 0) or np.any(b < 0):
        raise ValueError("p and q must be non-negative")
    a, b = a + eps, b + eps
    a, b = a / a.sum(), b / b.sum()
    return float(np.sum(a * np.log(a / b)))


def share_or_none(value: float, reference: float) -> float | None:
    """value / reference, or None when the reference is not positive (nothing to retain)."""
    return value / reference if reference > 1e-12 else None
