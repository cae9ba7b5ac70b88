"""Exact reductions of the per-scenario shedding knapsack, run before CP-SAT searches.

At 2,000 workloads CP-SAT spent seconds per scenario on presolve and search over variables
whose value the LP bound already decides; fixing them first leaves it ~10% of the model
(benchmarks/solvers.py measures it). Everything here works on the solver's integer data.
"""

from __future__ import annotations

import numpy as np

__all__ = ["reduced_cost_fixing", "fill_integer"]


def reduced_cost_fixing(a: np.ndarray, c: np.ndarray, span: np.ndarray, room: int) -> tuple[np.ndarray, np.ndarray]:
    """Levels (above the minimum) that every optimum of the integer knapsack must take (-1 = free),
    and the incumbent used: the LP optimum rounded down, then filled greedily (also the hint).

    The integer model is max c.y subject to a.y <= room, 0 <= y <= span. Its LP optimum fills
    by c/a until the break item; lambda = c/a of that item prices capacity, and each other
    item has reduced cost rc = c - lambda a per level. Moving an item one level off its LP
    value costs the LP bound at least |rc|, so when LP* - |rc| falls below a feasible
    incumbent's value no optimum moves it: it is fixed where the LP put it (the classic
    knapsack reduction). Exact, so CP-SAT's bound on the rest stays a bound of the whole.
    The margin covers the float arithmetic on the integer data.
    """
    n = a.size
    out = np.full(n, -1, dtype=np.int64)
    af, cf, uf = a.astype(np.float64), c.astype(np.float64), span.astype(np.float64)
    pos = np.flatnonzero(cf > 0)
    with np.errstate(divide="ignore"):
        ratio = np.where(af[pos] > 0, cf[pos] / np.where(af[pos] > 0, af[pos], 1.0), np.inf)
    order = pos[np.lexsort((pos, -ratio))]
    use = af[order] * uf[order]
    before = np.concatenate(([0.0], np.cumsum(use)[:-1]))
    y = np.zeros(n)
    full = before + use <= room
    y[order[full]] = uf[order[full]]
    lam, brk = 0.0, -1
    if not full.all():
        j = int(np.argmin(full))  # first item that does not fit whole: the break item
        brk = int(order[j])
        y[brk] = max(room - before[j], 0.0) / af[brk]
        lam = cf[brk] / af[brk]
    lp = float(cf @ y)
    incumbent = fill_integer(np.floor(y).astype(np.int64), a, span, room, order)
    inc = float(cf @ incumbent)
    rc = cf - lam * af
    margin = 1e-9 * (abs(lp) + float(np.abs(cf) @ uf)) + 1.0
    at_top, at_zero = (y >= uf) & (rc > 0), (y <= 0) & (rc <= 0)
    settled = (lp - np.abs(rc) < inc - margin) & (at_top | at_zero)
    if brk >= 0:
        settled[brk] = False  # the fractional item stays free
    out[settled & at_top] = span[settled & at_top]
    out[settled & at_zero] = 0
    return out, incumbent


def fill_integer(y: np.ndarray, a: np.ndarray, span: np.ndarray, room: int, order: np.ndarray) -> np.ndarray:
    """Raise levels in ``order`` while they fit, in exact integer arithmetic (a feasible point)."""
    left = int(room) - int(a @ y)
    if left < 0:  # float rounding put the LP point over: start from the minimums instead
        y[:], left = 0, int(room)
    for i in order[y[order] < span[order]].tolist():
        ai = int(a[i])
        add = int(span[i] - y[i]) if ai <= 0 else min(int(span[i] - y[i]), left // ai)
        if add > 0:
            y[i] += add
            left -= add * ai
        if left <= 0:
            break
    return y
