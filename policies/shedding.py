r"""Load shedding: per outage scenario, which workloads to admit, how much, in what order.

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

Builder (:func:`build_shedding_problems`): C(s) is the capacity of the region services
(kind == "region") not in effective_down, a degraded region counting
``degraded_capacity_share`` of it. A workload is runnable iff neither its service nor any
of its ``requires`` is in effective_down (closed again over the hard dependency edges).
r_w(s) sums its ``risks``: cost_per_hour when depends_on is down, ``degraded_risk_share``
of it when depends_on is degraded.

Solvers (one contract, :mod:`policies.solvers`): ``greedy`` (minimums, then density
(v - r) / d descending; also proves the LP bound), ``cpsat`` (exact CP-SAT model, see
:class:`CpSatSheddingSolver`), ``anneal`` (CQM -> BQM, simulated annealing, repaired).
:func:`solve_shedding` runs them as a portfolio per scenario.

Export: :func:`decisions_table` (``schema.DECISIONS_SHEDDING``) and :func:`policy_document`
(policy.json) rank each scenario's workloads: admitted ones by density descending (ties by
id), then runnable-but-shed ones in the same order, then the ones that cannot run.
Neither carries times or versions, so the same inputs and seed give the same bytes.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dimod
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp
from ortools.sat.python import cp_model

from policies.errors import ConfigError, SolverError
from policies.graph import close_down_set, hard_dependents
from policies.scenarios import Scenario
from policies.schema import DECISIONS_SHEDDING
from policies.solvers import PolicyResult, PortfolioResult, SolverInfo, derive_seed, package_versions, solve_portfolio

__all__ = [
    "SheddingProblem",
    "AdmissionBounds",
    "SheddingQubo",
    "GreedySheddingSolver",
    "CpSatSheddingSolver",
    "AnnealingSheddingSolver",
    "SHEDDING_SOLVERS",
    "shedding_objective",
    "is_feasible_shedding",
    "build_shedding_qubo",
    "build_shedding_problems",
    "solve_shedding",
    "shedding_actions",
    "decisions_table",
    "policy_document",
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
            raise ValueError(f"{self.scenario_key}: workload_ids must be unique and sorted "
                             "(they fix the variable order)")
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


def _levels_array(problem: SheddingProblem, levels_vec) -> np.ndarray:
    k = np.asarray(levels_vec)
    if k.shape != (len(problem.workload_ids),):
        raise ValueError(f"{problem.key}: expected {len(problem.workload_ids)} levels, got shape {k.shape}")
    return k


def shedding_objective(problem: SheddingProblem, levels_vec) -> float:
    """Exact objective: sum_w (k_w / L) * (v_w - r_w), in value per hour."""
    k = _levels_array(problem, levels_vec).astype(np.float64)
    return float(k @ problem.net) / problem.levels


def is_feasible_shedding(problem: SheddingProblem, levels_vec) -> bool:
    """Whether integer levels respect runnability, (relaxed) minimums and capacity (+tol)."""
    k = _levels_array(problem, levels_vec)
    if not np.issubdtype(k.dtype, np.integer):
        if not np.all(np.isfinite(k)) or not np.all(k == np.round(k)):
            return False
        k = np.round(k).astype(np.int64)
    b = problem.bounds
    if np.any(k < b.lo) or np.any(k > problem.levels) or np.any(k[~problem.runnable] != 0):
        return False
    return float(k @ problem.demand) / problem.levels <= problem.capacity + problem.tolerance


# -- shared greedy pieces ---------------------------------------------------------------


def _count(amount: float, step: float, rounding: Callable[[float], int], cap: int) -> int:
    """Levels of size ``step`` that fit in (floor) or cover (ceil) ``amount``, within 0..cap."""
    with np.errstate(over="ignore"):
        n = float(np.float64(amount) / np.float64(step))  # may be inf for tiny steps
    return 0 if n <= 0 else cap if n >= cap else min(int(rounding(n)), cap)


def _fill(p: SheddingProblem, k: np.ndarray) -> np.ndarray:
    """Raise levels in density order while they fit (within tol / 2)."""
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


def _repair(p: SheddingProblem, k: np.ndarray) -> np.ndarray:
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


def _lp_bound(p: SheddingProblem) -> float:
    """Dantzig bound: the fractional-knapsack optimum with capacity C + tol (valid upper bound)."""
    b, step = p.bounds, p.demand / p.levels
    c = p.net / p.levels
    room = p.capacity + p.tolerance - float(b.lo @ step)
    o = p.order[(b.hi - b.lo)[p.order] > 0]
    span = (b.hi - b.lo)[o].astype(np.float64)
    use = span * step[o]
    before = np.concatenate(([0.0], np.cumsum(use)[:-1]))
    with np.errstate(over="ignore"):
        frac = np.clip(np.where(use > 0, (room - before) / np.where(use > 0, use, 1.0), 1.0), 0.0, 1.0)
    bound = shedding_objective(p, b.lo) + float(np.sum(frac * span * c[o]))
    return bound + 1e-12 * (1.0 + abs(bound))  # float summation slack


def _extra(p: SheddingProblem) -> dict:
    b = p.bounds
    return {"min_share_relaxed": b.relaxed, "min_share_factor": b.factor}


def _result(p, solver, k, status, bound, seed, t0, params, extra=None, message="") -> PolicyResult:
    k = np.asarray(k, dtype=np.int64).copy()
    k.setflags(write=False)
    obj = shedding_objective(p, k)
    info = SolverInfo(
        solver=solver,
        status=status,
        objective=obj,
        bound=bound,
        seed=seed,
        time_s=time.perf_counter() - t0,
        params=params,
        versions=package_versions("numpy", "ortools", "dimod", "dwave-samplers"),
        message=message,
        extra={**_extra(p), **(extra or {})},
    )
    return PolicyResult(p.key, k, obj, is_feasible_shedding(p, k), info)


class GreedySheddingSolver:
    """Minimum shares first, then by (v - r) / d descending. Instant, always feasible."""

    name = "greedy"

    def solve(self, problem: SheddingProblem, *, seed: int, time_limit_s: float) -> PolicyResult:
        t0 = time.perf_counter()
        k = _fill(problem, problem.bounds.lo.copy())
        return _result(problem, self.name, k, "HEURISTIC", _lp_bound(problem), seed, t0, {})


class CpSatSheddingSolver:
    """OR-Tools CP-SAT on an integer model that brackets the float model.

    Scales: demand per level a_w = floor(S d_w / L) and room ceil(S (C + tol/2 - lo.d/L)),
    with S = 2^ceil(log2(4 (n_levels + 2) 1e9)) / max(C, sum d). Every solution that fits
    within tol/2 is integer-feasible, and every integer-feasible one fits within tol, so
    the CP-SAT solution is feasible and its bound (objective coefficients c_w = round(So
    (v_w - r_w) / L), So = 2^40 / max|c|, plus the summed rounding error) is a valid
    upper bound of the exact objective. OPTIMAL is optimal up to that rounding (~1e-10).
    """

    name = "cpsat"

    def __init__(self, *, num_workers: int = 1) -> None:
        if num_workers != 1:
            raise ValueError("num_workers must be 1: CP-SAT with several workers is not deterministic")
        self.num_workers = num_workers

    def solve(self, problem: SheddingProblem, *, seed: int, time_limit_s: float) -> PolicyResult:
        t0, p, b = time.perf_counter(), problem, problem.bounds
        # data
        free = np.flatnonzero(b.hi > b.lo)
        if free.size == 0:
            obj = shedding_objective(p, b.lo)
            return _result(p, self.name, b.lo, "OPTIMAL", obj, seed, t0, {})
        step, c = p.demand[free] / p.levels, p.net[free] / p.levels
        lo, hi = b.lo[free], b.hi[free]
        n_levels = int(np.sum(hi - lo))
        scale = max(p.capacity, float(p.demand.sum()), 2.0**-900)  # floor keeps S finite
        S = 2.0 ** math.ceil(math.log2(4 * (n_levels + 2) * 1e9)) / scale
        a = np.floor(step * S).astype(np.int64)
        room = max(p.capacity + p.tolerance / 2 - float(b.lo @ (p.demand / p.levels)), 0.0)
        cap = int(math.ceil(room * S))
        So = 2.0**40 / max(float(np.max(np.abs(c))), 2.0**-900)
        ci = np.round(c * So).astype(np.int64)
        eps = float(np.sum(np.abs(c - ci / So) * (hi - lo)))
        # variables
        model = cp_model.CpModel()
        x = [model.new_int_var(int(lo[i]), int(hi[i]), p.workload_ids[w]) for i, w in enumerate(free)]
        # constraints
        model.add(cp_model.LinearExpr.weighted_sum(x, a.tolist()) <= cap + int(a @ lo))
        # objective
        model.maximize(cp_model.LinearExpr.weighted_sum(x, ci.tolist()) - int(ci @ lo))
        hint = _fill(p, b.lo.copy())[free]
        for var, h in zip(x, hint.tolist()):
            model.add_hint(var, h)
        # solve
        solver = cp_model.CpSolver()
        solver.parameters.num_workers = self.num_workers
        solver.parameters.random_seed = int(seed) % 2**31
        solver.parameters.max_time_in_seconds = float(time_limit_s)
        status = solver.solve(model)
        params = {"num_workers": self.num_workers, "max_time_in_seconds": float(time_limit_s),
                  "demand_scale": S, "objective_scale": So}
        extra = {"cp_status": solver.status_name(status), "num_conflicts": solver.num_conflicts,
                 "num_branches": solver.num_branches, "rounding_eps": eps}
        if status == cp_model.INFEASIBLE:
            return _result(p, self.name, b.lo, "INFEASIBLE", None, seed, t0, params, extra,
                           "CP-SAT proved the integer model infeasible (the minimums should always fit)")
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            raise SolverError(f"CP-SAT returned {solver.status_name(status)} for {p.key!r} "
                              f"within {time_limit_s} s; raise time_limit_s")
        k = b.lo.copy()
        k[free] = [solver.value(v) for v in x]
        base = shedding_objective(p, b.lo)
        bound = base + solver.best_objective_bound / So + eps
        bound += 1e-12 * (1.0 + abs(base) + float(np.abs(c) @ (hi - lo)))  # float summation slack
        st = "OPTIMAL" if status == cp_model.OPTIMAL else "FEASIBLE"
        return _result(p, self.name, k, st, bound, seed, t0, params, extra)


# -- QUBO path --------------------------------------------------------------------------

_SLACK = re.compile(r"^slack_v[0-9a-f]{32}_(\d+)$")


@dataclass(frozen=True, eq=False)
class SheddingQubo:
    """The CQM and its BQM penalty form; y_w = k_w - base_w for each CQM variable."""

    cqm: dimod.ConstrainedQuadraticModel
    bqm: dimod.BinaryQuadraticModel
    invert: Callable[[dict], dict]
    base: np.ndarray  # levels held fixed (minimums; zero-demand workloads at full share)
    index: tuple[int, ...]  # workload index of each CQM variable, in variable order
    weight: np.ndarray  # integer capacity units per level of each CQM variable
    capacity_units: int  # integer room above base
    lagrange: float


def build_shedding_qubo(problem: SheddingProblem, *, resolution: int = 32, penalty_factor: float = 0.5) -> SheddingQubo:
    """CQM over y_w = k_w - base_w (Integer, or Binary when y_w <= 1), then ``dimod.cqm_to_bqm``.

    Capacity is discretised into ``resolution`` units of the room above the minimums; level
    weights a_w are rounded up, so an integer-feasible y is float-feasible. The Lagrange
    multiplier is lambda = ``penalty_factor * rho`` with rho = max_w c_w / a_w, the most one
    capacity unit earns (c_w = (v_w - r_w) / L per level): a violation by u units costs
    lambda u^2 while those u units earn about rho u. lambda >= max_w c_w would make the
    ground state provably feasible, but larger factors gave worse samples in our runs
    (penalty barriers), and every sample is repaired anyway.
    """
    if resolution < 1 or penalty_factor <= 0:
        raise ValueError("resolution must be >= 1 and penalty_factor > 0")
    p, b = problem, problem.bounds
    step, c = p.demand / p.levels, p.net / p.levels
    base = b.lo.copy()
    base[(step <= 0) & (b.hi > b.lo)] = b.hi[(step <= 0) & (b.hi > b.lo)]  # free capacity: take it all
    room = max(p.capacity + p.tolerance / 2 - float(base @ step), 0.0)
    unit = room / resolution if room > 0 else 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(step > 0, np.clip(np.ceil(step / unit - 1e-9), 1, resolution + 1), 0).astype(np.int64)
        fits = np.where(weight > 0, resolution // np.maximum(weight, 1), 0)
    span = np.minimum(b.hi - base, fits) if room > 0 else np.zeros_like(base)
    index = tuple(int(w) for w in np.flatnonzero(span > 0))  # ids are sorted: variable order = id order
    objective = dimod.QuadraticModel()
    for w in index:
        if span[w] == 1:
            objective.add_variable("BINARY", p.workload_ids[w])
        else:
            objective.add_variable("INTEGER", p.workload_ids[w], lower_bound=0, upper_bound=int(span[w]))
        objective.set_linear(p.workload_ids[w], -float(c[w]))
    cqm = dimod.ConstrainedQuadraticModel()
    cqm.set_objective(objective)
    lam = 0.0
    if index and int(weight[list(index)] @ span[list(index)]) > resolution:
        cqm.add_constraint_from_iterable(
            [(p.workload_ids[w], int(weight[w])) for w in index], "<=", rhs=resolution, label="capacity"
        )
        lam = penalty_factor * float(max(c[w] / weight[w] for w in index))
    bqm, invert = dimod.cqm_to_bqm(cqm, lagrange_multiplier=lam)
    slack = {v: ("slack", "capacity", int(m.group(1))) for v in bqm.variables
             if isinstance(v, str) and (m := _SLACK.match(v))}
    bqm.relabel_variables(slack, inplace=True)  # dimod's slack labels are random uuids
    base.setflags(write=False)
    return SheddingQubo(cqm, bqm, invert, base, index, weight[list(index)], resolution if index else 0, lam)


class AnnealingSheddingSolver:
    """QUBO path: CQM -> BQM, any dimod sampler (by import path), repair, exact evaluation.

    Every sample is inverted to levels, clipped to [lo, hi], repaired (lowest-density
    admissions dropped until the capacity holds) and, with ``fill``, topped up greedily;
    the best exact objective wins (first read on ties). Defaults (16 reads x 200 sweeps,
    resolution 32, penalty_factor 0.5) take ~0.05 s for 60 workloads; on that size the raw
    samples are poor (coarse capacity units, slack-bit barriers) and the repaired ones land
    ~1% below the CP-SAT optimum, so on this linear family the annealer rarely wins: it is
    here for the alternatives and to swap in a hosted sampler. ``time_limit_s`` is recorded but
    simulated annealing runs its fixed sweeps. The seed is passed when the sampler takes one
    (``extra["seeded"]``); a sampler that cannot be seeded (a hosted QPU) is not repeatable.
    """

    name = "anneal"

    def __init__(
        self,
        *,
        sampler: str = "dwave.samplers.SimulatedAnnealingSampler",
        sampler_kwargs: dict | None = None,
        num_reads: int = 16,
        num_sweeps: int = 200,
        sample_kwargs: dict | None = None,
        resolution: int = 32,
        penalty_factor: float = 0.5,
        fill: bool = True,
    ) -> None:
        if num_reads < 1 or num_sweeps < 1:
            raise ValueError("num_reads and num_sweeps must be >= 1")
        module, _, attr = sampler.rpartition(".")
        try:
            self._sampler = getattr(importlib.import_module(module), attr)(**(sampler_kwargs or {}))
        except (ImportError, AttributeError, ValueError) as exc:
            raise ConfigError(f"cannot load sampler {sampler!r} ({exc}); give 'package.module.ClassName'") from exc
        self.sampler, self.num_reads, self.num_sweeps = sampler, num_reads, num_sweeps
        self.sample_kwargs = dict(sample_kwargs or {})
        self.resolution, self.penalty_factor, self.fill = resolution, penalty_factor, fill

    def solve(self, problem: SheddingProblem, *, seed: int, time_limit_s: float) -> PolicyResult:
        t0, p = time.perf_counter(), problem
        q = build_shedding_qubo(p, resolution=self.resolution, penalty_factor=self.penalty_factor)
        params = {"sampler": self.sampler, "num_reads": self.num_reads, "num_sweeps": self.num_sweeps,
                  "resolution": self.resolution, "penalty_factor": self.penalty_factor, "fill": self.fill,
                  "lagrange": q.lagrange, **self.sample_kwargs}
        if not q.index:
            k = _fill(p, q.base.copy()) if self.fill else q.base.copy()
            return _result(p, self.name, k, "HEURISTIC", None, seed, t0, params, {"num_variables": 0})
        accepted = _accepted_params(self._sampler)
        kwargs = dict(self.sample_kwargs)
        for k_, v_ in (("num_reads", self.num_reads), ("num_sweeps", self.num_sweeps), ("seed", int(seed) % 2**31)):
            if k_ in accepted:
                kwargs.setdefault(k_, v_)
        sampleset = self._sampler.sample(q.bqm, **kwargs)
        labels = [p.workload_ids[w] for w in q.index]
        idx = np.asarray(q.index)
        best, best_obj, raw_ok = None, -math.inf, 0
        for row in sampleset.record.sample:
            y = q.invert(dict(zip(sampleset.variables, row.tolist())))
            yv = np.array([y[v] for v in labels], dtype=np.int64)
            raw_ok += int(yv @ q.weight <= q.capacity_units)
            k = q.base.copy()
            k[idx] += yv
            k = _repair(p, k)
            if self.fill:
                k = _fill(p, k)
            obj = shedding_objective(p, k)
            if obj > best_obj:
                best, best_obj = k, obj
        extra = {"num_variables": q.bqm.num_variables, "num_interactions": q.bqm.num_interactions,
                 "raw_feasible_reads": raw_ok, "reads": len(sampleset), "seeded": "seed" in kwargs}
        return _result(p, self.name, best, "HEURISTIC", None, seed, t0, params, extra)


def _accepted_params(sampler) -> set[str]:
    """Keyword arguments a dimod sampler takes: its ``parameters`` plus its named ``sample`` arguments."""
    names = set(getattr(sampler, "parameters", {}) or {})
    try:
        sig = inspect.signature(sampler.sample)
    except (TypeError, ValueError):
        return names
    return names | {n for n, a in sig.parameters.items() if a.kind in (a.KEYWORD_ONLY, a.POSITIONAL_OR_KEYWORD)}


SHEDDING_SOLVERS: dict[str, Callable[..., object]] = {
    "greedy": GreedySheddingSolver,
    "cpsat": CpSatSheddingSolver,
    "anneal": AnnealingSheddingSolver,
}


def solve_shedding(
    problems: Sequence[SheddingProblem],
    *,
    seed: int,
    time_limit_s: float,
    solvers: Sequence[str | object] = ("greedy", "cpsat", "anneal"),
    anneal_params: dict | None = None,
    top_k: int = 3,
    progress: Callable[[int, int], None] | None = None,
) -> list[PortfolioResult]:
    """Run the portfolio on every problem (``time_limit_s`` per solver and problem).

    Each problem's seed is derived from ``seed`` and its key, so re-solving a subset (an
    incident re-run) gives the same answers as the nightly run for those scenarios.
    """
    built = []
    for s in solvers:
        if isinstance(s, str):
            if s not in SHEDDING_SOLVERS:
                raise ConfigError(f"unknown shedding solver {s!r}; choose from {', '.join(SHEDDING_SOLVERS)}")
            built.append(SHEDDING_SOLVERS[s](**(anneal_params or {})) if s == "anneal" else SHEDDING_SOLVERS[s]())
        else:
            built.append(s)
    out = []
    for i, prob in enumerate(problems):
        out.append(solve_portfolio(prob, built, objective=shedding_objective, is_feasible=is_feasible_shedding,
                                   seed=derive_seed(seed, prob.key), time_limit_s=time_limit_s, top_k=top_k))
        if progress is not None:
            progress(i + 1, len(problems))
    return out


# -- problem builder --------------------------------------------------------------------


def _incidence(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    return sp.csr_matrix((vals.astype(np.float64), (rows, cols)), shape=shape)


def build_shedding_problems(
    services: pa.Table,
    dependencies: pa.Table,
    workloads: pa.Table,
    scenarios: Sequence[Scenario],
    *,
    levels: int = 4,
    degraded_capacity_share: float = 0.5,
    degraded_risk_share: float = 0.5,
) -> list[SheddingProblem]:
    """One :class:`SheddingProblem` per scenario, in scenario order (see the module docstring).

    Vectorised: service ids become matrix columns, so runnability, risk and capacity of
    every (workload, scenario) pair come from three sparse-dense products.
    """
    for name, share in (("degraded_capacity_share", degraded_capacity_share),
                        ("degraded_risk_share", degraded_risk_share)):
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{name} must be within 0..1, got {share!r}")
    svc_ids = services.column("service_id").to_pylist()
    if len(set(svc_ids)) != len(svc_ids):
        raise ValueError("services: service_id must be unique")
    wl = workloads.sort_by("workload_id")
    wids = wl.column("workload_id").to_pylist()
    if len(set(wids)) != len(wids):
        raise ValueError("workloads: workload_id must be unique")
    edges = zip(*(dependencies.column(c).to_pylist() for c in ("service_id", "depends_on", "hard")))
    dependents = hard_dependents(edges)
    req, risks = wl.column("requires").combine_chunks(), wl.column("risks").combine_chunks()
    req_ids, req_rows = pc.list_flatten(req).to_pylist(), pc.list_parent_indices(req).to_numpy()
    flat_risk, risk_rows = pc.list_flatten(risks), pc.list_parent_indices(risks).to_numpy()
    risk_ids = flat_risk.field("depends_on").to_pylist()
    own_ids = wl.column("service_id").to_pylist()
    closed = [close_down_set(set(s.effective_down) | set(s.down), dependents) for s in scenarios]
    names = set(svc_ids).union(req_ids, risk_ids, own_ids, *closed, *(s.degraded for s in scenarios))
    code = {s: i for i, s in enumerate(sorted(names))}

    def codes(ids) -> np.ndarray:
        return np.array([code[x] for x in ids], dtype=np.int64)

    n, m, ns = len(wids), len(code), len(scenarios)
    needs = _incidence(np.concatenate([req_rows, np.arange(n)]), np.concatenate([codes(req_ids), codes(own_ids)]),
                       np.ones(len(req_ids) + n), (n, m))  # own service counts as a requirement
    risk = _incidence(risk_rows, codes(risk_ids), _numpy(flat_risk.field("cost_per_hour")), (n, m))
    down, degraded = np.zeros((m, ns)), np.zeros((m, ns))
    for j, (s, eff) in enumerate(zip(scenarios, closed)):
        down[codes(sorted(eff)), j] = 1.0
        degraded[codes(sorted(set(s.degraded) - eff)), j] = 1.0
    is_region = np.array([k == "region" for k in services.column("kind").to_pylist()], dtype=bool)
    region_cap = np.zeros(m)
    region_cap[codes(svc_ids)] = np.where(is_region, _numpy(services.column("capacity")), 0.0)
    capacity = region_cap @ (1.0 - down - (1.0 - degraded_capacity_share) * degraded)
    runnable = np.asarray(needs @ down) == 0
    risk_s = np.asarray(risk @ (down + degraded_risk_share * degraded))
    value, demand, min_share = (_numpy(wl.column(c)) for c in ("value_per_hour", "demand", "min_share"))
    return [
        SheddingProblem(
            scenario_key=s.key, workload_ids=tuple(wids), value_per_hour=value, risk_per_hour=risk_s[:, j],
            demand=demand, min_share=min_share, runnable=runnable[:, j], capacity=float(capacity[j]), levels=levels,
        )
        for j, s in enumerate(scenarios)
    ]


def _numpy(col) -> np.ndarray:
    return np.asarray(col.to_numpy(zero_copy_only=False) if isinstance(col, pa.Array) else col.to_numpy(),
                      dtype=np.float64)


# -- export -----------------------------------------------------------------------------


def shedding_actions(problem: SheddingProblem, levels_vec) -> list[dict]:
    """Ranked actions: admitted by density, then runnable-but-shed, then not runnable."""
    k = _levels_array(problem, levels_vec)
    group = np.where(k > 0, 0, np.where(problem.runnable, 1, 2))
    pos = np.empty(len(k), dtype=np.int64)
    pos[problem.order] = np.arange(len(k))
    ranked = np.lexsort((pos, group))
    return [
        {"workload_id": problem.workload_ids[w], "admit": float(k[w]) / problem.levels, "rank": r}
        for r, w in enumerate(ranked.tolist(), start=1)
    ]


def _aligned(scenarios, results, problems):
    if not len(scenarios) == len(results) == len(problems):
        raise ValueError(f"got {len(scenarios)} scenarios, {len(results)} results and {len(problems)} problems")
    for s, r, p in zip(scenarios, results, problems):
        if not s.key == r.problem_key == p.scenario_key:
            raise ValueError(f"misaligned inputs: scenario {s.key!r}, result {r.problem_key!r}, "
                             f"problem {p.scenario_key!r}; pass them in the same order")
    return zip(scenarios, results, problems)


def decisions_table(scenarios: Sequence[Scenario], results: Sequence[PortfolioResult],
                    problems: Sequence[SheddingProblem]) -> pa.Table:
    """decisions.parquet rows, conforming to ``DECISIONS_SHEDDING``: scenario order, then rank."""
    cols: dict[str, list] = {f.name: [] for f in DECISIONS_SHEDDING}
    for s, r, p in _aligned(scenarios, results, problems):
        for a in shedding_actions(p, r.best.solution):
            cols["scenario_key"].append(s.key)
            cols["down"].append(list(s.down))
            cols["degraded"].append(list(s.degraded))
            cols["effective_down"].append(list(s.effective_down))
            cols["probability"].append(float(s.probability))
            cols["workload_id"].append(a["workload_id"])
            cols["admit"].append(a["admit"])
            cols["rank"].append(a["rank"])
    return pa.Table.from_pydict(cols, schema=DECISIONS_SHEDDING)


def _r(x: float | None, digits: int = 6) -> float | None:
    return None if x is None else round(float(x), digits) + 0.0  # + 0.0 turns -0.0 into 0.0


def _sig(x: float | None) -> float | None:
    return None if x is None else float(f"{float(x):.12g}") + 0.0


def policy_document(scenarios: Sequence[Scenario], results: Sequence[PortfolioResult],
                    problems: Sequence[SheddingProblem]) -> dict:
    """policy.json content: stable floats, no timestamps, versions or solve times."""
    out = []
    for s, r, p in _aligned(scenarios, results, problems):
        out.append({
            "key": s.key, "down": list(s.down), "degraded": list(s.degraded),
            "effective_down": list(s.effective_down), "probability": _sig(s.probability),
            "expected_duration_min": _r(s.expected_duration_min), "source": s.source,
            "solver": r.chosen, "objective": _r(r.best.objective), "bound": _r(r.bound),
            "gap": _sig(r.gap), "status": r.best.info.status, "min_share_relaxed": bool(p.bounds.relaxed),
            "actions": [{**a, "admit": _r(a["admit"])} for a in shedding_actions(p, r.best.solution)],
        })
    return {"schema_version": 1, "policy": "shedding", "scenarios": out}
