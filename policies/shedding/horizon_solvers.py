"""Solvers of the time-coupled problem (:mod:`policies.shedding.horizon`) behind the portfolio contract.

``greedy`` is the live rule: switch to the static greedy knapsack on sight and hold it. It is
the baseline and, whole (levels, switches, exits, change flags), CP-SAT's hint. ``cpsat`` is
exact (its bound is proven); ``anneal`` samples the QUBO of :mod:`policies.shedding.horizon_qubo`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
from ortools.sat.python import cp_model

from policies.shedding.horizon import (
    HorizonProblem,
    greedy_levels,
    hold_trajectory,
    horizon_objective,
    horizon_problem_from_dict,
    horizon_variables,
    is_feasible_horizon,
)
from policies.shedding.horizon_qubo import build_horizon_qubo, repair_horizon_samples
from policies.solve.anneal import DEFAULT_SAMPLER, load_sampler, sample_kwargs
from policies.solve.cpsat import cpsat_solver, run_cpsat
from policies.solve.family import Family
from policies.solve.portfolio import PolicyResult
from policies.solve.result import ANNEAL_VERSIONS, build_result

__all__ = ["GreedyHorizonSolver", "CpSatHorizonSolver", "AnnealingHorizonSolver", "HORIZON_SOLVERS", "HORIZON"]


def _result(p, solver, x, status, bound, seed, t0, params, extra=None) -> PolicyResult:
    return build_result(
        p,
        solver,
        np.asarray(x, dtype=np.int64),
        objective=horizon_objective,
        is_feasible=is_feasible_horizon,
        status=status,
        bound=bound,
        seed=seed,
        t0=t0,
        params=params,
        versions=ANNEAL_VERSIONS,
        extra=extra,
    )


class GreedyHorizonSolver:
    """Switch to the static greedy knapsack at step 0 and hold it: what a live greedy does."""

    name = "greedy"

    def solve(self, problem: HorizonProblem, *, seed: int, time_limit_s: float) -> PolicyResult:
        t0 = time.perf_counter()
        x = hold_trajectory(problem, greedy_levels(problem))
        return _result(problem, self.name, x, "HEURISTIC", None, seed, t0, {})


# Objective coefficients' integer precision (relative to the largest). Was 36: the paired states of a
# 1,000-service fleet (~200 workloads, ~18,700 pairs) then carried products of 2^40-sized integers,
# and CP-SAT took 0.5 deterministic units (10-15 s of wall clock at load 10) without a proof; at 24
# the same states are proven optimal in ~0.25 units with the same plans (every state at 250 and
# 1,000 services), and the bound's rounding term (2 x the summed error, in the reported bound) is
# still ~1e-4 of the objective there, tighter than the unproven bound at 36.
OBJECTIVE_BITS = 24


class CpSatHorizonSolver:
    """CP-SAT on the integer model, hinted with the whole greedy trajectory.

    Capacity is scaled as in the static solver (a_w = floor(S d_w / L), room ceil(S (C + tol/2)),
    S = 2^ceil(log2(4 (nL + 2) 1e9)) / max(C, sum d)), so every integer-feasible answer fits within
    tol and the greedy hint (within tol/2) is integer-feasible. Objective coefficients are rounded at
    scale 2^OBJECTIVE_BITS / max|c|; the reported bound adds twice the summed rounding error.
    """

    name = "cpsat"

    def __init__(
        self, *, deterministic_time: float | None = None, wall_time_factor: float = 10.0, presolve: bool = False
    ) -> None:
        self.deterministic_time, self.wall_time_factor = deterministic_time, float(wall_time_factor)
        # Presolve took ~1 s of wall clock per nightly-sized state (60 workloads x 6 steps) for a
        # search of 0.02 deterministic units; without it the same optimum is proven in ~0.1 s.
        self.presolve = bool(presolve)
        # The wall-clock net is wide (10x): on a loaded 2-core host a search of 0.5 units took over 6 s
        # once, and only the net can make an answer depend on the load.

    def solve(self, problem: HorizonProblem, *, seed: int, time_limit_s: float) -> PolicyResult:
        t0, p = time.perf_counter(), problem
        b, T, n, L = p.base, p.steps, len(p.base.workload_ids), p.base.levels
        g = hold_trajectory(p, greedy_levels(p)).reshape(T, n)
        scale = max(b.capacity, float(b.demand.sum()), 2.0**-900)
        S = 2.0 ** math.ceil(math.log2(4 * (n * L + 2) * 1e9)) / scale
        a = np.floor(b.demand / L * S).astype(np.int64).tolist()
        cap = int(math.ceil((b.capacity + b.tolerance / 2) * S))
        X = p.exit_levels.shape[0]
        costs = [p.value_per_level, -np.outer(p.survival, p.up_cost), -np.outer(p.survival, p.down_cost)]
        for q in p.exit_share:
            costs += [-q * np.outer(p.leave, p.up_cost), -q * np.outer(p.leave, p.down_cost)]
        pw, pv, _ = p.pairs
        top = max(float(np.max(np.abs(c), initial=0.0)) for c in (*costs, p.pair_per_level))
        So = 2.0**OBJECTIVE_BITS / max(top, 2.0**-900)
        ints = [np.round(c * So).astype(np.int64) for c in costs]
        eps = L * sum(float(np.sum(np.abs(c - i / So))) for c, i in zip(costs, ints))
        pair_ints = np.round(p.pair_per_level * So).astype(np.int64)
        eps += L * L * float(np.sum(np.abs(p.pair_per_level - pair_ints / So)))

        m = cp_model.CpModel()
        lo, hi, prev, ex = p.lo.tolist(), p.hi.tolist(), p.prev.tolist(), p.exit_levels.tolist()
        k = [[m.new_int_var(lo[w], hi[w], f"k{t}_{w}") for w in range(n)] for t in range(T)]
        names = ("up", "dn", *(f"{d}{x}" for x in range(X) for d in ("eu", "ed")))
        aux = {nm: [[m.new_int_var(0, L, f"{nm}{t}_{w}") for w in range(n)] for t in range(T)] for nm in names}
        ch = [[m.new_bool_var(f"ch{t}_{w}") for w in range(n)] for t in range(T)]
        hints = {nm: np.zeros((T, n), dtype=np.int64) for nm in names}
        before = np.vstack([p.prev[None, :], g[:-1]])
        hints["up"], hints["dn"] = np.maximum(g - before, 0), np.maximum(before - g, 0)
        for x in range(X):
            hints[f"eu{x}"], hints[f"ed{x}"] = np.maximum(p.exit_levels[x] - g, 0), np.maximum(g - p.exit_levels[x], 0)
        terms, coefs = [], []
        for t in range(T):
            m.add(cp_model.LinearExpr.weighted_sum(k[t], a) <= cap)
            for w in range(n):
                last = prev[w] if t == 0 else k[t - 1][w]
                up, dn = aux["up"][t][w], aux["dn"][t][w]
                m.add(k[t][w] - last == up - dn)
                m.add(up + dn <= L * ch[t][w])
                for x in range(X):
                    m.add(ex[x][w] - k[t][w] == aux[f"eu{x}"][t][w] - aux[f"ed{x}"][t][w])
                terms += [k[t][w], *(aux[nm][t][w] for nm in names)]
                coefs += [int(i[t, w]) for i in ints]
                m.add_hint(k[t][w], int(g[t, w]))
                m.add_hint(ch[t][w], bool(g[t, w] != before[t, w]))
                for nm in names:
                    m.add_hint(aux[nm][t][w], int(hints[nm][t, w]))
        for t in range(T):  # correlated risk, one product per paired workload (_pair_terms)
            z = _pair_terms(m, k[t], p, pw, pv, pair_ints[t], g[t], f"{t}")
            terms += z
            coefs += [-1] * len(z)
        if p.max_changes is not None:
            for w in range(n):
                m.add(sum(ch[t][w] for t in range(T)) <= p.max_changes)
        if p.dwell > 1:
            for w in range(n):
                for t in range(T - 1):
                    m.add(sum(ch[s][w] for s in range(t, min(t + p.dwell, T))) <= 1)
        m.maximize(cp_model.LinearExpr.weighted_sum(terms, coefs))
        solver, params = cpsat_solver(
            seed=seed,
            time_limit_s=time_limit_s,
            deterministic_time=self.deterministic_time,
            wall_time_factor=self.wall_time_factor,
            presolve=self.presolve,
        )
        params.update(demand_scale=S, objective_scale=So)
        run = run_cpsat(solver, m, what=f"horizon {p.key!r}")
        x = np.array([[solver.value(v) for v in row] for row in k], dtype=np.int64).reshape(-1)
        exact = horizon_objective(p, x)
        bound = exact + (solver.best_objective_bound - solver.objective_value) / So + 2 * eps
        bound += 1e-12 * (1.0 + abs(exact) + top * T * n * L)  # float summation slack
        extra = {
            "cp_status": run.cp_status,
            "stopped_by": run.stopped_by,
            "deterministic_time": solver.deterministic_time,
            "rounding_eps": eps,
            "num_conflicts": solver.num_conflicts,
        }
        return _result(p, self.name, x, run.status, bound, seed, t0, params, extra)


def _pair_terms(m: cp_model.CpModel, k: list, p: HorizonProblem, pw, pv, c, hint, tag: str) -> list:
    """One step's correlated risk sum_{w<v} c_wv k_w k_v as sum_w k_w P_w, P_w = sum_v c_wv k_v: the same
    integer objective with one product per paired workload instead of one per pair.

    Why: a state of a 1,000-service fleet paired ~110 free workloads almost all with each other
    (~5,800 pairs, x 6 steps): CP-SAT spent 7-20 s of wall clock on 0.5 deterministic units, ending
    on its wall-clock net (load-dependent answers), and proved no optimum. Aggregated, the same
    states are proven optimal in ~1 s. Returns the product variables (objective coefficient -1).
    """
    out = []
    lo, hi = p.lo, p.hi
    order = np.argsort(pw, kind="stable")
    ws, starts = np.unique(pw[order], return_index=True)
    for w, sel in zip(ws.tolist(), np.split(order, starts[1:])):
        vs, cs = pv[sel].tolist(), c[sel].tolist()
        p_lo, p_hi = int(c[sel] @ lo[pv[sel]]), int(c[sel] @ hi[pv[sel]])
        pv_var = m.new_int_var(p_lo, p_hi, f"P{tag}_{w}")
        m.add(pv_var == cp_model.LinearExpr.weighted_sum([k[v] for v in vs], cs))
        z = m.new_int_var(int(lo[w]) * p_lo, int(hi[w]) * p_hi, f"z{tag}_{w}")
        m.add_multiplication_equality(z, [k[w], pv_var])
        h = int(c[sel] @ hint[pv[sel]])
        m.add_hint(pv_var, h)
        m.add_hint(z, int(hint[w]) * h)
        out.append(z)
    return out


class AnnealingHorizonSolver:
    """The QUBO (thermometer-coded levels, exact switching terms, unbalanced capacity penalty),
    any dimod sampler by import path, every read repaired (dwell, then capacity) and judged exactly.

    ``time_limit_s`` is recorded; simulated annealing runs its fixed reads x sweeps (the benchmark
    matches wall time by choosing them).
    """

    name = "anneal"

    def __init__(
        self,
        *,
        sampler: str = DEFAULT_SAMPLER,
        sampler_kwargs: dict | None = None,
        num_reads: int = 16,
        num_sweeps: int = 400,
        sample_kwargs: dict | None = None,
        resolution: int = 32,
        penalty: tuple[float, float] = (0.5, 0.5),
    ) -> None:
        if num_reads < 1 or num_sweeps < 1:
            raise ValueError("num_reads and num_sweeps must be >= 1")
        self._sampler = load_sampler(sampler, sampler_kwargs)
        self.sampler, self.num_reads, self.num_sweeps = sampler, num_reads, num_sweeps
        self.sample_kwargs = dict(sample_kwargs or {})
        self.resolution, self.penalty = int(resolution), (float(penalty[0]), float(penalty[1]))

    def solve(self, problem: HorizonProblem, *, seed: int, time_limit_s: float) -> PolicyResult:
        t0, p = time.perf_counter(), problem
        q = build_horizon_qubo(p, resolution=self.resolution, penalty=self.penalty)
        params = {
            "sampler": self.sampler,
            "num_reads": self.num_reads,
            "num_sweeps": self.num_sweeps,
            "resolution": self.resolution,
            "penalty": list(self.penalty),
            **self.sample_kwargs,
        }
        if q.bqm.num_variables == 0:
            x = hold_trajectory(p, p.lo)
            return _result(p, self.name, x, "HEURISTIC", None, seed, t0, params, {"num_variables": 0})
        kwargs = sample_kwargs(
            self._sampler, seed=seed, given=self.sample_kwargs, num_reads=self.num_reads, num_sweeps=self.num_sweeps
        )
        sampleset = self._sampler.sample(q.bqm, **kwargs)
        best, raw_ok = repair_horizon_samples(p, q, sampleset)
        extra = {
            "num_variables": q.bqm.num_variables,
            "num_interactions": q.bqm.num_interactions,
            "raw_feasible_reads": raw_ok,
            "seeded": "seed" in kwargs,
        }
        return _result(p, self.name, best, "HEURISTIC", None, seed, t0, params, extra)


HORIZON_SOLVERS: dict[str, Callable[..., object]] = {
    "greedy": GreedyHorizonSolver,
    "cpsat": CpSatHorizonSolver,
    "anneal": AnnealingHorizonSolver,
}


HORIZON = Family(
    name="horizon",
    from_dict=horizon_problem_from_dict,
    solvers=HORIZON_SOLVERS,
    objective=horizon_objective,
    is_feasible=is_feasible_horizon,
    sense="max",
    default_solvers=("greedy", "cpsat", "anneal"),
    variables=horizon_variables,
)
"""Time-coupled shedding per observed state: the shedding family's second problem, solved the one way."""
