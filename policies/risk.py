"""The one tail-risk measure: CVaR_alpha, the mean of the worst ``1 - alpha`` of a loss distribution.

Three callers, three kinds of distribution, one definition (Rockafellar-Uryasev):

- routing: K equally likely latency samples; the tail holds ``(1 - alpha) K`` samples taken
  as the raw product, because the routing LP weighs every sample ``1 / ((1 - alpha) K)``
  and the exact objective must be the LP's own (``whole_tail=False``);
- the backtest: n equally likely incidents; the tail is ``(1 - alpha) n`` rounded to 9
  digits (0.05 * 20 is 1.0000000000000009 in floats, which is one incident) and at least
  one, so with fewer than ``1 / (1 - alpha)`` incidents it is the worst one
  (``whole_tail=True``);
- tiers: scenarios with probabilities (``probabilities=``), the probability-weighted mean of
  the worst ``1 - alpha`` mass, as the CP-SAT tier model linearises it.

The three agree wherever the tail is a whole number of equally likely losses
(tests/policies/test_risk.py); where they differ they differ only in how they round, and
each caller keeps its own so every published number stays the same to the bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["cvar"]


def cvar(
    losses: Sequence[float] | np.ndarray,
    alpha: float,
    *,
    probabilities: Sequence[float] | np.ndarray | None = None,
    whole_tail: bool = False,
) -> float:
    """CVaR_alpha of ``losses`` (equally likely unless ``probabilities`` are given; see the module)."""
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"alpha must be within [0, 1), got {alpha!r}")
    if probabilities is not None:
        return _weighted(np.asarray(losses, dtype=np.float64), np.asarray(probabilities, dtype=np.float64), alpha)
    z = np.sort(np.asarray(losses, dtype=np.float64))[::-1]
    if z.size == 0:
        raise ValueError("cvar of no losses")
    m = (1.0 - alpha) * z.size
    if whole_tail:
        if not np.all(np.isfinite(z)):
            raise ValueError("losses must be finite numbers")
        m = max(round(m, 9), 1.0)
    full = int(math.floor(m + 1e-12))
    rest = m - full
    if whole_tail:
        total = float(z[:full].sum()) + (rest * float(z[full]) if rest > 1e-12 and full < z.size else 0.0)
    else:
        total = float(z[:full].sum()) + (rest * float(z[full]) if full < z.size else 0.0)
    return total / m


def _weighted(losses: np.ndarray, prob: np.ndarray, alpha: float) -> float:
    """The probability-weighted mean of the worst 1 - alpha mass (ties: the earlier scenario first)."""
    order = np.argsort(-losses, kind="stable")
    left, total = 1.0 - alpha, 0.0
    for i in order:
        take = min(float(prob[i]), left)
        total += take * float(losses[i])
        left -= take
        if left <= 1e-15:
            break
    return total / (1.0 - alpha)
