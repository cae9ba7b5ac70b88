r"""The shedding problem, its exact objective and feasibility: the one truth every solver is judged by.

Model (one problem per scenario s; workloads w in sorted-id order, L = ``levels``)::

    maximize    sum_w  x_w * (v_w - r_w(s))                  value minus risk, per hour
    subject to  sum_w  x_w * d_w  <=  C(s)                   capacity left in s
                x_w in {0, 1/L, ..., 1}                      admitted share, k_w = L * x_w
                x_w = 0                  if w is not runnable in s
                x_w >= ceil(L m_w) / L   if w is runnable    minimum share, rounded up

If the runnable minimum shares do not fit in C(s), every runnable m_w is scaled by the
same factor f = C(s) / sum_w m_w d_w and rounded *down* to a level (never above the
unscaled minimum), so the minimums fit; results record ``min_share_relaxed`` and f.
A workload with v_w - r_w(s) <= 0 only ever gets its minimum (more would cost value and
capacity). Feasibility allows ``tol = 1e-9 * max(C, sum_w d_w)`` of float slack on the
capacity; the solvers themselves stay within tol / 2.

Kept apart from the solvers so that the solvers, the QUBO path and the export can all
depend on it without depending on each other. :func:`fill_levels` and
:func:`repair_levels` live here too: they are the two feasibility-keeping moves on a
level vector that several solvers share (greedy builds with fill, CP-SAT hints with it,
the annealer repairs its samples with both).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "SheddingProblem",
    "AdmissionBounds",
    "shedding_problem_from_dict",
    "shedding_problem_to_dict",
    "check_levels",
    "shedding_objective",
    "is_feasible_shedding",
    "fill_levels",
    "repair_levels",
    "serve_in_order",
]

_FEAS_REL_TOL = 1e-9


@dataclass(frozen=True)
class AdmissionBounds:
    """Per-workload level range [lo, hi] after min-share rounding and relaxation."""

    lo: np.ndarray
    hi: np.ndarray
    relaxed: bool
    factor: float | None  # the min-share scale factor f when relaxed


@dataclass(frozen=True, eq=False)
class SheddingProblem:
    """One scenario's shedding instance; arrays are aligned with ``workload_ids`` (sorted)."""

    scenario_key: str
    workload_ids: tuple[str, ...]
    value_per_hour: np.ndarray
    risk_per_hour: np.ndarray
    demand: np.ndarray
    min_share: np.ndarray
    runnable: np.ndarray
    capacity: float
    levels: int = 4

    def __post_init__(self) -> None:
        ids = tuple(self.workload_ids)
        if list(ids) != sorted(set(ids)):
            raise ValueError(
                f"{self.scenario_key}: workload_ids must be unique and sorted (they fix the variable order)"
            )
        if not isinstance(self.levels, (int, np.integer)) or isinstance(self.levels, bool) or self.levels < 1:
            raise ValueError(f"{self.scenario_key}: levels must be an int >= 1, got {self.levels!r}")
        n = len(ids)
        arrays = {}
        for name in ("value_per_hour", "risk_per_hour", "demand", "min_share"):
            a = np.array(getattr(self, name), dtype=np.float64).reshape(-1)
            if a.shape != (n,) or not np.all(np.isfinite(a)):
                raise ValueError(f"{self.scenario_key}: {name} must be {n} finite numbers")
            arrays[name] = a
        run = np.asarray(self.runnable)
        if run.dtype != np.bool_ or run.shape != (n,):
            raise TypeError(f"{self.scenario_key}: runnable must be a bool array of length {n}")
        arrays["runnable"] = run.copy()
        if np.any(arrays["demand"] < 0):
            raise ValueError(f"{self.scenario_key}: demand must be >= 0")
        if np.any((arrays["min_share"] < 0) | (arrays["min_share"] > 1)):
            raise ValueError(f"{self.scenario_key}: min_share must be within 0..1")
        if not math.isfinite(self.capacity) or self.capacity < 0:
            raise ValueError(f"{self.scenario_key}: capacity must be finite and >= 0, got {self.capacity!r}")
        for name, a in arrays.items():
            a.setflags(write=False)
            object.__setattr__(self, name, a)
        object.__setattr__(self, "workload_ids", ids)
        object.__setattr__(self, "capacity", float(self.capacity))
        object.__setattr__(self, "levels", int(self.levels))

    @property
    def key(self) -> str:
        return self.scenario_key

    @functools.cached_property
    def net(self) -> np.ndarray:
        """v - r per workload (per hour at full admission)."""
        return self.value_per_hour - self.risk_per_hour

    @functools.cached_property
    def tolerance(self) -> float:
        return _FEAS_REL_TOL * max(self.capacity, float(self.demand.sum()))

    @functools.cached_property
    def bounds(self) -> AdmissionBounds:
        return _admission_bounds(self)

    @functools.cached_property
    def order(self) -> np.ndarray:
        """Workload indices by net value density (v - r) / d descending, ties by id."""
        d, net = self.demand, self.net
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            dens = np.where(d > 0, net / np.where(d > 0, d, 1.0), np.sign(net) * np.inf)
        return np.lexsort((np.arange(len(d)), -dens))


def _admission_bounds(p: SheddingProblem) -> AdmissionBounds:
    L, run, m, step = p.levels, p.runnable, p.min_share, p.demand / p.levels
    lo = np.where(run, np.clip(np.ceil(m * L - 1e-9), 0, L), 0).astype(np.int64)
    relaxed, factor = False, None
    limit = p.capacity + p.tolerance / 2
    if float(lo @ step) > limit:
        mass = float(np.where(run, m, 0.0) @ p.demand)
        factor = p.capacity / mass  # mass > 0 here, or lo @ step would be 0
        scaled = np.minimum(lo, np.floor(factor * m * L + 1e-9).astype(np.int64))
        if float(scaled @ step) > limit:
            scaled = np.minimum(lo, np.floor(factor * m * L).astype(np.int64))
        lo, relaxed = np.where(run, scaled, 0), True
    hi = np.where(run, L, 0).astype(np.int64)
    hi = np.where(run & (p.net <= 0), lo, hi)
    lo.setflags(write=False)
    hi.setflags(write=False)
    return AdmissionBounds(lo=lo, hi=hi, relaxed=relaxed, factor=factor)


def check_levels(problem: SheddingProblem, levels_vec) -> np.ndarray:
    """``levels_vec`` as an array, or ValueError when it does not have one entry per workload."""
    k = np.asarray(levels_vec)
    if k.shape != (len(problem.workload_ids),):
        raise ValueError(f"{problem.key}: expected {len(problem.workload_ids)} levels, got shape {k.shape}")
    return k


def shedding_objective(problem: SheddingProblem, levels_vec) -> float:
    """Exact objective: sum_w (k_w / L) * (v_w - r_w), in value per hour."""
    k = check_levels(problem, levels_vec).astype(np.float64)
    return float(k @ problem.net) / problem.levels


def is_feasible_shedding(problem: SheddingProblem, levels_vec) -> bool:
    """Whether integer levels respect runnability, (relaxed) minimums and capacity (+tol)."""
    k = check_levels(problem, levels_vec)
    if not np.issubdtype(k.dtype, np.integer):
        if not np.all(np.isfinite(k)) or not np.all(k == np.round(k)):
            return False
        k = np.round(k).astype(np.int64)
    b = problem.bounds
    if np.any(k < b.lo) or np.any(k > problem.levels) or np.any(k[~problem.runnable] != 0):
        return False
    return float(k @ problem.demand) / problem.levels <= problem.capacity + problem.tolerance


# -- feasibility-keeping moves ------------------------------------------------------------


def _count(amount: float, step: float, rounding: Callable[[float], int], cap: int) -> int:
    """Levels of size ``step`` that fit in (floor) or cover (ceil) ``amount``, within 0..cap."""
    with np.errstate(over="ignore"):
        n = float(np.float64(amount) / np.float64(step))  # may be inf for tiny steps
    return 0 if n <= 0 else cap if n >= cap else min(int(rounding(n)), cap)


def fill_levels(p: SheddingProblem, k: np.ndarray) -> np.ndarray:
    """Raise levels in density order while they fit (within tol / 2); changes and returns ``k``."""
    hi, step = p.bounds.hi, p.demand / p.levels
    room = p.capacity + p.tolerance / 2 - float(k @ step)
    for w in p.order:
        add = int(hi[w] - k[w])
        if add <= 0:
            continue
        if step[w] > 0:
            add = _count(room, step[w], math.floor, add)
        if add > 0:
            k[w] += add
            room -= add * step[w]
    return k


def repair_levels(p: SheddingProblem, k: np.ndarray) -> np.ndarray:
    """Clip to [lo, hi], then drop levels of the lowest-density workloads until k fits."""
    b, step = p.bounds, p.demand / p.levels
    k = np.clip(k, b.lo, b.hi).astype(np.int64)
    excess = float(k @ step) - (p.capacity + p.tolerance / 2)
    for w in p.order[::-1]:
        if excess <= 0:
            break
        if k[w] > b.lo[w] and step[w] > 0:
            drop = _count(excess, step[w], math.ceil, int(k[w] - b.lo[w]))
            k[w] -= drop
            excess -= drop * step[w]
    return k


def serve_in_order(problem: SheddingProblem, intended, priority) -> np.ndarray:
    """What a runtime with admission control runs: unrunnable work gives nothing; overload is served in
    ``priority`` order, each workload taking the whole levels that still fit (the backtest's world and
    the admission caps of :mod:`policies.shedding.admission` both use it)."""
    L = problem.levels
    k = np.where(problem.runnable, np.clip(np.asarray(intended, dtype=np.int64), 0, L), 0)
    step = problem.demand / L
    if float(k @ step) <= problem.capacity + problem.tolerance:
        return k
    out, room = np.zeros_like(k), problem.capacity + problem.tolerance / 2
    for w in priority:
        if k[w] == 0:
            continue
        take = int(k[w]) if step[w] <= 0 else min(int(k[w]), max(int(math.floor(room / step[w] + 1e-9)), 0))
        out[w] = take
        room -= take * step[w]
    return out


def shedding_problem_from_dict(doc: dict) -> SheddingProblem:
    """From the documented JSON form (``data/examples/shedding.json``; ``key`` names the scenario)."""
    wl = sorted(doc["workloads"], key=lambda w: str(w["workload_id"]))
    return SheddingProblem(
        scenario_key=str(doc.get("key", "shedding")),
        workload_ids=tuple(str(w["workload_id"]) for w in wl),
        value_per_hour=np.array([float(w["value_per_hour"]) for w in wl]),
        risk_per_hour=np.array([float(w.get("risk_per_hour", 0.0)) for w in wl]),
        demand=np.array([float(w["demand"]) for w in wl]),
        min_share=np.array([float(w.get("min_share", 0.0)) for w in wl]),
        runnable=np.array([bool(w.get("runnable", True)) for w in wl]),
        capacity=float(doc["capacity"]),
        levels=int(doc.get("levels", 4)),
    )


def shedding_problem_to_dict(p: SheddingProblem) -> dict:
    """The JSON form of a problem (floats round-trip exactly): a nightly scenario as a ``qres solve`` file."""
    return {
        "key": p.scenario_key,
        "capacity": p.capacity,
        "levels": int(p.levels),
        "workloads": [
            {
                "workload_id": w,
                "value_per_hour": float(p.value_per_hour[i]),
                "risk_per_hour": float(p.risk_per_hour[i]),
                "demand": float(p.demand[i]),
                "min_share": float(p.min_share[i]),
                "runnable": bool(p.runnable[i]),
            }
            for i, w in enumerate(p.workload_ids)
        ],
    }
