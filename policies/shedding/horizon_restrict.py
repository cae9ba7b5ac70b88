r"""A state's time-coupled plan over the workloads it can change; the others held at their level.

A horizon problem is a CP-SAT model over every workload x step, so a fleet's plans grew with the
fleet (1,000 services: ~5.8 s per state, 334 states). Most workloads have nothing to plan in a
given state. A workload is *free* when any of these holds, else *held* at ``prev`` at every step:

- its constant ``prev`` trajectory is not its own best one (capacity aside): it is blocked
  (``prev`` outside its bounds), at risk (shedding pays), or cheaper to move for any other reason;
- the state's static optimum moves it (what capacity asks of it), or an exit plan does;
- it is in a correlated-risk pair (``pair_cost``): the pair's cost couples the two.

The free workloads form a smaller :class:`HorizonProblem` (their own terms, capacity less what the
held ones use at ``prev``), whose solution expands back to the full problem (:func:`expand`).

**When the restricted plan is the full one** (:func:`is_exact`). Each held workload's constant
``prev`` is its own optimum, so only capacity couples it to the free ones, and that coupling is
empty when either (a) no held workload can give capacity (zero demand, or ``prev`` at its lower
bound), or (b) capacity does not bind the free workloads: their restricted optimum equals the
sum of their own optima. Then full optimum <= sum of own optima = restricted optimum + held
value, and the expanded plan attains it. Otherwise (capacity binds, and a held workload could
shed to make room) the restricted plan is a feasible plan of the full problem and may be worse;
:func:`plan_over_time` also weighs the live rule on the full problem, so it is never worse than
that. Only the one-change rule the nightly uses (``max_changes == 1``) is restricted; other
problems are solved whole.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from policies.shedding.horizon import HorizonProblem, greedy_levels, hold_trajectory, horizon_objective
from policies.shedding.problem import SheddingProblem

__all__ = ["Restriction", "restrict", "expand", "own_values", "is_exact", "full_solution"]

_REL_TOL = 1e-9


@dataclass(frozen=True, eq=False)
class Restriction:
    """``problem`` over ``free`` (indices into ``full``'s workloads); the rest held at ``full.prev``."""

    full: HorizonProblem
    problem: HorizonProblem
    free: np.ndarray

    @property
    def held(self) -> np.ndarray:
        return np.setdiff1d(np.arange(len(self.full.base.workload_ids)), self.free)


def own_values(p: HorizonProblem) -> tuple[np.ndarray, np.ndarray]:
    """Per workload, capacity aside, under one change: (its constant-``prev`` value, its best value).

    The constant ``prev`` value is -inf where ``prev`` is outside the bounds. Every one-change
    trajectory (switch to level l at step s, then hold) is enumerated: T x (L+1) per workload.
    """
    T, L = p.steps, p.base.levels
    vpl, S, E = p.value_per_level, p.survival, p.leave  # [T, n], [T], [T]
    prev = p.prev.astype(np.float64)
    lo, hi = p.lo, p.hi

    def sw(a, b):  # switching cost a -> b per workload (broadcast)
        d = b - a
        return np.maximum(d, 0) * p.up_cost + np.maximum(-d, 0) * p.down_cost

    def exit_cost(level) -> np.ndarray:  # [..., n]: expected cost of leaving from ``level``
        return sum(q * sw(level, e.astype(np.float64)) for q, e in zip(p.exit_share, p.exit_levels))

    cum_v = np.vstack([np.zeros((1, vpl.shape[1])), np.cumsum(vpl, axis=0)])  # [T+1, n]: value of steps < s
    cum_e = np.concatenate([[0.0], np.cumsum(E)])  # mass of endings before step s
    ok_prev = (p.prev >= lo) & (p.prev <= hi)
    stay = np.where(ok_prev, cum_v[T] * prev - exit_cost(prev), -np.inf)
    best = stay.copy()
    for level in range(L + 1):
        fits = (level >= lo) & (level <= hi) & (level != p.prev)
        lv = np.full_like(prev, float(level))
        for s in range(T):
            before = cum_v[s] * prev - cum_e[s] * exit_cost(prev)
            after = (cum_v[T] - cum_v[s]) * lv - (cum_e[T] - cum_e[s]) * exit_cost(lv)
            v = before + after - S[s] * sw(prev, lv)
            best = np.where(fits & (ok_prev | (s == 0)) & (v > best), v, best)  # prev kept before s
    return stay, best


def _scale(p: HorizonProblem) -> float:
    return (
        1.0
        + float(np.sum(np.abs(p.value_per_level))) * p.base.levels
        + float(np.sum(p.up_cost + p.down_cost)) * p.base.levels
    )


def restrict(p: HorizonProblem, static_levels) -> Restriction:
    """The free workloads of the module docstring; ``static_levels``: the state's static optimum."""
    n = len(p.base.workload_ids)
    if p.max_changes != 1 or n == 0:
        return Restriction(p, _dense_pairs(p), np.arange(n))
    stay, best = own_values(p)
    tol = _REL_TOL * _scale(p)
    moved = np.asarray(static_levels, dtype=np.int64) != p.prev
    exits = np.any(p.exit_levels != p.prev[None, :], axis=0)
    free_mask = ~np.isfinite(stay) | (best > stay + tol) | moved | exits
    pw, pv, _ = p.pairs  # correlated-risk pairs couple their two workloads: both stay free
    free_mask[pw] = free_mask[pv] = True
    free_mask[0] |= not free_mask.any()  # nothing to change: one workload keeps the problem well-formed
    free = np.flatnonzero(free_mask)
    if free.size == n:
        return Restriction(p, _dense_pairs(p), free)
    b, held = p.base, ~free_mask
    held_use = float(p.prev[held] @ b.demand[held]) / b.levels
    lo = p.lo[free]  # kept as the full problem's (relaxed) minimums: ceil(lo - 1e-9) = lo
    sub = SheddingProblem(
        scenario_key=b.scenario_key,
        workload_ids=tuple(b.workload_ids[i] for i in free),
        value_per_hour=b.value_per_hour[free],
        risk_per_hour=b.risk_per_hour[free],
        demand=b.demand[free],
        min_share=lo / b.levels,
        runnable=b.runnable[free],
        capacity=max(0.0, b.capacity - held_use),
        levels=b.levels,
    )
    problem = HorizonProblem(
        base=sub,
        step_s=p.step_s,
        survival=p.survival,
        prev=p.prev[free],
        exit_levels=p.exit_levels[:, free],
        down_cost=p.down_cost[free],
        up_cost=p.up_cost[free],
        dwell=p.dwell,
        exit_share=p.exit_share,
        max_changes=p.max_changes,
        pair_cost=p.pair_block(free),
    )
    return Restriction(p, problem, free)


def expand(r: Restriction, solution) -> np.ndarray:
    """The restricted solution as the full problem's flat step-major vector (held workloads at ``prev``)."""
    x = np.asarray(solution, dtype=np.int64).reshape(r.full.steps, -1)
    k = np.tile(r.full.prev, (r.full.steps, 1))
    k[:, r.free] = x
    return k.reshape(-1)


def is_exact(r: Restriction, solution) -> bool:
    """Whether the module docstring's condition holds for this (optimal) restricted solution, so that
    its expansion is optimal for the full problem too."""
    if r.problem is r.full:
        return True
    p, held = r.full, r.held
    if np.all((p.base.demand[held] == 0) | (p.prev[held] == p.lo[held])):
        return True
    _, best = own_values(r.problem)
    got = horizon_objective(r.problem, solution)
    return bool(got >= float(np.sum(best)) - _REL_TOL * _scale(r.problem))


def full_solution(r: Restriction, solution, chosen: str) -> tuple[np.ndarray, str, float, float]:
    """(flat full solution, solver, its full objective, the live rule's full objective): the expanded
    restricted plan, or the live rule's (greedy on the whole state) when that is strictly better."""
    x = expand(r, solution)
    live = hold_trajectory(r.full, greedy_levels(r.full))
    got, live_value = horizon_objective(r.full, x), horizon_objective(r.full, live)
    if live_value > got + _REL_TOL * _scale(r.full):
        return live, "greedy", live_value, live_value
    return x, chosen, got, live_value


def _dense_pairs(p: HorizonProblem) -> HorizonProblem:
    """The problem the solvers get carries its pairs dense, as before they were kept sparse, so its
    content digest (and with it the solvers' seed and cache key) does not depend on the form."""
    if p.pair_cost is None or isinstance(p.pair_cost, np.ndarray):
        return p
    return dataclasses.replace(p, pair_cost=p.pair_block(np.arange(len(p.base.workload_ids))))
