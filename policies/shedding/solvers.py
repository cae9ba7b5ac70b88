"""The shedding solvers behind the one contract of :mod:`policies.solve.portfolio`, and their registry.

Three answers of different kinds for the portfolio: ``greedy`` (instant, always feasible,
and the LP bound), ``cpsat`` (exact, with a proven bound) and ``anneal`` (the QUBO path,
where a hosted sampler can be swapped in). Each is judged by the exact objective of
:mod:`policies.shedding.problem`, never by its own numbers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
from ortools.sat.python import cp_model

from policies.shedding.fixing import reduced_cost_fixing
from policies.shedding.problem import SheddingProblem, fill_levels, is_feasible_shedding, shedding_objective
from policies.shedding.qubo import build_shedding_qubo, repair_samples
from policies.solve.anneal import DEFAULT_SAMPLER, load_sampler, sample_kwargs
from policies.solve.cpsat import cpsat_solver, run_cpsat
from policies.solve.portfolio import PolicyResult
from policies.solve.result import ANNEAL_VERSIONS, build_result

__all__ = [
    "GreedySheddingSolver",
    "CpSatSheddingSolver",
    "AnnealingSheddingSolver",
    "SHEDDING_SOLVERS",
]


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


def _result(p, solver, k, status, bound, seed, t0, params, extra=None, message="") -> PolicyResult:
    return build_result(
        p,
        solver,
        np.asarray(k, dtype=np.int64),
        objective=shedding_objective,
        is_feasible=is_feasible_shedding,
        status=status,
        bound=bound,
        seed=seed,
        t0=t0,
        params=params,
        versions=ANNEAL_VERSIONS,
        extra={"min_share_relaxed": p.bounds.relaxed, "min_share_factor": p.bounds.factor, **(extra or {})},
        message=message,
    )


class GreedySheddingSolver:
    """Minimum shares first, then by (v - r) / d descending. Instant, always feasible."""

    name = "greedy"

    def solve(self, problem: SheddingProblem, *, seed: int, time_limit_s: float) -> PolicyResult:
        t0 = time.perf_counter()
        k = fill_levels(problem, problem.bounds.lo.copy())
        return _result(problem, self.name, k, "HEURISTIC", _lp_bound(problem), seed, t0, {})


class CpSatSheddingSolver:
    """OR-Tools CP-SAT on an integer model that brackets the float model.

    Scales: demand per level a_w = floor(S d_w / L) and room ceil(S (C + tol/2 - lo.d/L)),
    with S = 2^ceil(log2(4 (n_levels + 2) 1e9)) / max(C, sum d). Every solution that fits
    within tol/2 is integer-feasible, and every integer-feasible one fits within tol, so
    the CP-SAT solution is feasible and its bound (objective coefficients c_w = round(So
    (v_w - r_w) / L), So = 2^40 / max|c|, plus the summed rounding error) is a valid
    upper bound of the exact objective. OPTIMAL is optimal up to that rounding (~1e-10).

    Before the search, reduced-cost fixing (:mod:`policies.shedding.fixing`) settles every
    workload whose move off its LP value would cost more than the LP gap to an incumbent
    (about 90% of them at 2,000 workloads), and CP-SAT's presolve is off (it loops for
    seconds on this one-constraint model); both exact, measured in benchmarks/solvers.py.

    Stopping: the primary limit is CP-SAT's ``max_deterministic_time``, counted in work
    units that do not depend on machine load, so that the answer does not either. By
    default it is ``UNITS_PER_S * time_limit_s``: one unit took 3 to 4.5 s of wall clock on
    our 2-core build machine (searches of 0.2 to 0.7 units on this model; OR-Tools aims
    for about 1 s), so the search costs about ``time_limit_s`` there, and less on a faster
    machine. ``deterministic_time`` overrides it. ``max_time_in_seconds`` is only a safety
    net for a machine so loaded that the deterministic limit would take too long:
    ``wall_time_factor`` (3) times the larger of ``time_limit_s`` and the limit's expected
    wall time (units / ``UNITS_PER_S``). With one worker the search depends only on the
    model, the seed and the work done, so the same inputs and seed give byte-for-byte the
    same answer whenever the search proves optimality or the deterministic limit is the
    one that stops it. Only when the wall-clock net stops it (``extra["stopped_by"] ==
    "wall_clock"``, logged as a warning) may the answer depend on load.
    """

    name = "cpsat"

    def __init__(
        self,
        *,
        num_workers: int = 1,
        deterministic_time: float | None = None,
        wall_time_factor: float = 3.0,
        presolve: bool = False,
        fixing: bool = True,
    ) -> None:
        if num_workers != 1:
            raise ValueError("num_workers must be 1: CP-SAT with several workers is not deterministic")
        if deterministic_time is not None and not deterministic_time > 0:
            raise ValueError(
                f"deterministic_time must be > 0 (or None to derive it from time_limit_s), got {deterministic_time!r}"
            )
        if not wall_time_factor >= 1:
            raise ValueError(
                f"wall_time_factor must be >= 1 so the deterministic limit stops first, got {wall_time_factor!r}"
            )
        self.num_workers = num_workers
        self.deterministic_time = None if deterministic_time is None else float(deterministic_time)
        self.wall_time_factor = float(wall_time_factor)
        # CP-SAT's presolve loops on this one-constraint model with 2^40-scale coefficients
        # (~2.4 s of wall clock at 2,000 workloads for 0.03 deterministic units of search);
        # without it the same instance is proven optimal in ~0.06 s (benchmarks/solvers.py).
        self.presolve = bool(presolve)
        self.fixing = bool(fixing)  # reduced-cost fixing before the search

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
        if self.fixing:
            fixed, y0 = reduced_cost_fixing(a, ci, hi - lo, cap)
            hint = lo + y0
        else:
            fixed, hint = np.full(free.size, -1), fill_levels(p, b.lo.copy())[free]
        keep = np.flatnonzero(fixed < 0)
        const_y = np.where(fixed >= 0, fixed, 0)  # levels above lo of the fixed workloads
        # variables (the workloads reduced-cost fixing could not settle)
        model = cp_model.CpModel()
        x = [model.new_int_var(int(lo[i]), int(hi[i]), p.workload_ids[free[i]]) for i in keep.tolist()]
        # constraints
        model.add(
            cp_model.LinearExpr.weighted_sum(x, a[keep].tolist()) <= cap + int(a[keep] @ lo[keep]) - int(a @ const_y)
        )
        # objective
        model.maximize(
            cp_model.LinearExpr.weighted_sum(x, ci[keep].tolist()) - int(ci[keep] @ lo[keep]) + int(ci @ const_y)
        )
        for var, h in zip(x, hint[keep].tolist()):
            model.add_hint(var, h)
        # solve
        solver, params = cpsat_solver(
            seed=seed,
            time_limit_s=time_limit_s,
            deterministic_time=self.deterministic_time,
            wall_time_factor=self.wall_time_factor,
            presolve=self.presolve,
        )
        params.update(demand_scale=S, objective_scale=So)
        run = run_cpsat(solver, model, what=f"shedding {p.key!r}", allow_infeasible=True)
        extra = {
            "cp_status": run.cp_status,
            "num_conflicts": solver.num_conflicts,
            "num_branches": solver.num_branches,
            "rounding_eps": eps,
            "deterministic_time": solver.deterministic_time,
            "stopped_by": run.stopped_by,
            "fixed_by_reduced_cost": int(free.size - keep.size),
        }
        if run.status == "INFEASIBLE":
            return _result(
                p,
                self.name,
                b.lo,
                "INFEASIBLE",
                None,
                seed,
                t0,
                params,
                extra,
                "CP-SAT proved the integer model infeasible (the minimums should always fit)",
            )
        k = b.lo.copy()
        k[free] = lo + const_y
        k[free[keep]] = [solver.value(v) for v in x]
        base = shedding_objective(p, b.lo)
        bound = base + solver.best_objective_bound / So + eps
        bound += 1e-12 * (1.0 + abs(base) + float(np.abs(c) @ (hi - lo)))  # float summation slack
        return _result(p, self.name, k, run.status, bound, seed, t0, params, extra)


class AnnealingSheddingSolver:
    """QUBO path: CQM -> BQM, any dimod sampler (by import path), repair, exact evaluation.

    Every sample is repaired to feasible levels (:func:`~policies.shedding.qubo.repair_samples`)
    and the best exact objective wins (first read on ties). Defaults (16 reads x 200 sweeps,
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
        sampler: str = DEFAULT_SAMPLER,
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
        self._sampler = load_sampler(sampler, sampler_kwargs)
        self.sampler, self.num_reads, self.num_sweeps = sampler, num_reads, num_sweeps
        self.sample_kwargs = dict(sample_kwargs or {})
        self.resolution, self.penalty_factor, self.fill = resolution, penalty_factor, fill

    def solve(self, problem: SheddingProblem, *, seed: int, time_limit_s: float) -> PolicyResult:
        t0, p = time.perf_counter(), problem
        q = build_shedding_qubo(p, resolution=self.resolution, penalty_factor=self.penalty_factor)
        params = {
            "sampler": self.sampler,
            "num_reads": self.num_reads,
            "num_sweeps": self.num_sweeps,
            "resolution": self.resolution,
            "penalty_factor": self.penalty_factor,
            "fill": self.fill,
            "lagrange": q.lagrange,
            **self.sample_kwargs,
        }
        if not q.index:
            k = fill_levels(p, q.base.copy()) if self.fill else q.base.copy()
            return _result(p, self.name, k, "HEURISTIC", None, seed, t0, params, {"num_variables": 0})
        kwargs = sample_kwargs(
            self._sampler, seed=seed, given=self.sample_kwargs, num_reads=self.num_reads, num_sweeps=self.num_sweeps
        )
        sampleset = self._sampler.sample(q.bqm, **kwargs)
        best, raw_ok = repair_samples(p, q, sampleset, fill=self.fill)
        extra = {
            "num_variables": q.bqm.num_variables,
            "num_interactions": q.bqm.num_interactions,
            "raw_feasible_reads": raw_ok,
            "reads": len(sampleset),
            "seeded": "seed" in kwargs,
        }
        return _result(p, self.name, best, "HEURISTIC", None, seed, t0, params, extra)


SHEDDING_SOLVERS: dict[str, Callable[..., object]] = {
    "greedy": GreedySheddingSolver,
    "cpsat": CpSatSheddingSolver,
    "anneal": AnnealingSheddingSolver,
}
