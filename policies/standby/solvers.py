"""The standby solvers behind the one contract of :mod:`policies.solve.portfolio`.

``greedy`` (marginal exact value per cost, instant), ``cpsat`` (the exact scenario objective
as a 0/1 model, with a proven bound) and ``anneal`` (the QUBO surrogate of
:mod:`policies.standby.qubo` on any dimod sampler). All are judged on the exact objective.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
from ortools.sat.python import cp_model

from policies.solve.anneal import DEFAULT_SAMPLER, load_sampler, sample_kwargs
from policies.solve.cpsat import cpsat_solver, run_cpsat
from policies.solve.portfolio import PolicyResult
from policies.solve.result import ANNEAL_VERSIONS, build_result
from policies.standby.problem import StandbyProblem, is_feasible_standby, standby_objective
from policies.standby.qubo import build_standby_qubo

__all__ = [
    "GreedyStandbySolver",
    "CpSatStandbySolver",
    "AnnealingStandbySolver",
    "STANDBY_SOLVERS",
    "repair_choice",
    "fill_choice",
    "improve_choice",
]


def _result(
    p: StandbyProblem, solver: str, x, status: str, bound, seed: int, t0: float, params: dict, extra: dict | None = None
) -> PolicyResult:
    return build_result(
        p,
        solver,
        np.asarray(x, dtype=np.int8),
        objective=standby_objective,
        is_feasible=is_feasible_standby,
        status=status,
        bound=bound,
        seed=seed,
        t0=t0,
        params=params,
        versions=ANNEAL_VERSIONS,
        extra=extra,
    )


def _trivial_bound(p: StandbyProblem) -> float:
    """Every pair served by its best candidate: a valid (weak) upper bound."""
    if p.gain.shape[0] == 0:
        return 0.0
    return float(np.asarray(p.gain.max(axis=1).todense()).sum()) * (1 + 1e-12)


def _marginals(p: StandbyProblem, cur: np.ndarray) -> np.ndarray:
    """Exact marginal value of adding each candidate, given each pair's current best gain ``cur``."""
    g = p.gain_csc
    rows = g.indices
    inc = np.maximum(g.data - cur[rows], 0.0)
    return np.add.reduceat(np.append(inc, 0.0), g.indptr[:-1]) * (np.diff(g.indptr) > 0)


def fill_choice(p: StandbyProblem, x: np.ndarray) -> np.ndarray:
    """Add the candidate with the best marginal value per cost while any fits; changes and returns x."""
    g = p.gain
    cur = (
        g.multiply(x.astype(np.float64).reshape(1, -1)).tocsr().max(axis=1).toarray().reshape(-1)
        if g.shape[0] and x.any()
        else np.zeros(g.shape[0])
    )
    spent = np.bincount(p.site, weights=p.cost * x, minlength=len(p.site_ids))
    while True:
        room = p.budget + p.tolerance / 2 - spent
        ok = (x == 0) & (p.cost <= room[p.site])
        if not ok.any():
            return x
        m = _marginals(p, cur)
        score = np.where(ok & (m > 0), m / np.maximum(p.cost, 1e-12), -1.0)
        c = int(np.argmax(score))  # first index on ties: sorted ids
        if score[c] <= 0:
            return x
        x[c] = 1
        spent[p.site[c]] += p.cost[c]
        col = p.gain_csc
        rows, vals = col.indices[col.indptr[c] : col.indptr[c + 1]], col.data[col.indptr[c] : col.indptr[c + 1]]
        cur[rows] = np.maximum(cur[rows], vals)


def repair_choice(p: StandbyProblem, x: np.ndarray) -> np.ndarray:
    """Drop the chosen candidate with the least solo value per cost at each over-budget site until it fits."""
    x = (np.asarray(x) > 0).astype(np.int8)
    spent = np.bincount(p.site, weights=p.cost * x, minlength=len(p.site_ids))
    for i in np.flatnonzero(spent > p.budget + p.tolerance / 2):
        at = np.flatnonzero((p.site == i) & (x == 1))
        order = at[np.lexsort((at, p.solo_value[at] / np.maximum(p.cost[at], 1e-12)))]
        for c in order:
            if spent[i] <= p.budget[i] + p.tolerance[i] / 2:
                break
            x[c] = 0
            spent[i] -= p.cost[c]
    return x


def improve_choice(p: StandbyProblem, x: np.ndarray, passes: int) -> np.ndarray:
    """Local search on the exact objective: drop one chosen standby, refill greedily, keep if better.

    Deterministic (candidates in index order, a fixed number of passes); returns a feasible
    choice at least as good as ``x`` (which must be feasible).
    """
    x = np.asarray(x, dtype=np.int8).copy()
    best = standby_objective(p, x)
    for _ in range(passes):
        improved = False
        for c in np.flatnonzero(x).tolist():
            if not x[c]:
                continue
            y = x.copy()
            y[c] = 0
            y = fill_choice(p, y)
            obj = standby_objective(p, y)
            if obj > best + 1e-12 * max(1.0, abs(best)):
                x, best, improved = y, obj, True
        if not improved:
            break
    return x


class GreedyStandbySolver:
    """Best marginal exact value per unit cost, until nothing fits or helps. Instant."""

    name = "greedy"

    def solve(self, problem: StandbyProblem, *, seed: int, time_limit_s: float) -> PolicyResult:
        t0 = time.perf_counter()
        x = fill_choice(problem, np.zeros(len(problem.candidate_ids), dtype=np.int8))
        return _result(problem, self.name, x, "HEURISTIC", _trivial_bound(problem), seed, t0, {})


class CpSatStandbySolver:
    """The exact objective as CP-SAT: x_c, y_kc <= x_c, sum_c y_kc <= 1, max sum_k,c gain_kc y_kc.

    Integer scaling as in the shedding CP-SAT model: costs floor(S cost), budgets
    floor(S (B + tol/2)) with S = 2 n / tol, so integer-feasible is float-feasible and the
    bound (objective rounded at 2^40 / max gain, plus the rounding error) is valid. Stops on
    deterministic time (``UNITS_PER_S * time_limit_s``), one worker: repeatable.
    """

    name = "cpsat"

    def __init__(self, *, deterministic_time: float | None = None, wall_time_factor: float = 3.0) -> None:
        self.deterministic_time, self.wall_time_factor = deterministic_time, float(wall_time_factor)

    def solve(self, problem: StandbyProblem, *, seed: int, time_limit_s: float) -> PolicyResult:
        t0, p = time.perf_counter(), problem
        n = len(p.candidate_ids)
        model = cp_model.CpModel()
        # variables
        x = [model.new_bool_var(c) for c in p.candidate_ids]
        # constraints: budgets
        for i in range(len(p.site_ids)):
            at = np.flatnonzero(p.site == i)
            if not at.size or p.cost[at].sum() <= p.budget[i]:
                continue
            scale = 2.0 * n / p.tolerance[i]
            a = np.floor(p.cost[at] * scale).astype(np.int64)
            cap = int(math.floor((p.budget[i] + p.tolerance[i] / 2) * scale))
            model.add(cp_model.LinearExpr.weighted_sum([x[c] for c in at], a.tolist()) <= cap)
        # objective: pairs
        g = p.gain.tocsr()
        so = 2.0**40 / max(float(g.data.max()) if g.nnz else 1.0, 2.0**-900)
        hint = fill_choice(p, np.zeros(n, dtype=np.int8))
        for var, h in zip(x, hint.tolist()):
            model.add_hint(var, h)
        terms, coefs, eps = [], [], 0.0
        for k in range(g.shape[0]):
            cols, vals = g.indices[g.indptr[k] : g.indptr[k + 1]], g.data[g.indptr[k] : g.indptr[k + 1]]
            if cols.size == 1:
                ys = [x[int(cols[0])]]
            else:
                ys = [model.new_bool_var(f"y{k}_{c}") for c in cols]
                for y, c in zip(ys, cols):
                    model.add_implication(y, x[int(c)])
                model.add_at_most_one(ys)
                # the complete hint: each pair served by its best hinted candidate, as the objective counts it
                on = np.where(hint[cols] > 0, vals, -np.inf)
                best = int(np.argmax(on)) if np.isfinite(on).any() else -1
                for i, y in enumerate(ys):
                    model.add_hint(y, i == best)
            ints = np.round(vals * so).astype(np.int64)
            eps += float(np.max(np.abs(vals - ints / so)))
            terms += ys
            coefs += ints.tolist()
        model.maximize(cp_model.LinearExpr.weighted_sum(terms, coefs))
        # solve
        solver, params = cpsat_solver(
            seed=seed,
            time_limit_s=time_limit_s,
            deterministic_time=self.deterministic_time,
            wall_time_factor=self.wall_time_factor,
        )
        run = run_cpsat(solver, model, what=f"standby {p.key!r}")
        extra = {
            "cp_status": run.cp_status,
            "deterministic_time": solver.deterministic_time,
            "stopped_by": run.stopped_by,
            "num_pairs": int(g.shape[0]),
        }
        sol = np.array([solver.value(v) for v in x], dtype=np.int8)
        bound = solver.best_objective_bound / so + eps
        bound += 1e-12 * (1.0 + abs(bound))
        return _result(p, self.name, sol, run.status, bound, seed, t0, params, extra)


class AnnealingStandbySolver:
    """The QUBO surrogate on any dimod sampler; every read repaired, filled and scored exactly.

    The best read is then polished on the exact objective (``polish_passes`` rounds of
    drop-one-and-refill, :func:`improve_choice`): the surrogate's ground state is only
    near the exact optimum where a service has more than two usable copies.
    """

    name = "anneal"

    def __init__(
        self,
        *,
        sampler: str = DEFAULT_SAMPLER,
        sampler_kwargs: dict | None = None,
        num_reads: int = 16,
        num_sweeps: int = 1000,
        penalty_factor: float = 1.5,
        resolution: int = 64,
        polish_passes: int = 2,
    ) -> None:
        if num_reads < 1 or num_sweeps < 1 or polish_passes < 0:
            raise ValueError("num_reads and num_sweeps must be >= 1, polish_passes >= 0")
        self.polish_passes = int(polish_passes)
        self._sampler = load_sampler(sampler, sampler_kwargs)
        self.sampler, self.num_reads, self.num_sweeps = sampler, num_reads, num_sweeps
        self.penalty_factor, self.resolution = penalty_factor, resolution

    def solve(self, problem: StandbyProblem, *, seed: int, time_limit_s: float) -> PolicyResult:
        t0, p = time.perf_counter(), problem
        q = build_standby_qubo(p, penalty_factor=self.penalty_factor, resolution=self.resolution)
        params = {
            "sampler": self.sampler,
            "num_reads": self.num_reads,
            "num_sweeps": self.num_sweeps,
            "penalty_factor": self.penalty_factor,
            "resolution": self.resolution,
            "polish_passes": self.polish_passes,
        }
        n = len(p.candidate_ids)
        if q.bqm.num_variables == 0:
            return _result(p, self.name, np.zeros(n, dtype=np.int8), "HEURISTIC", None, seed, t0, params)
        kwargs = sample_kwargs(self._sampler, seed=seed, num_reads=self.num_reads, num_sweeps=self.num_sweeps)
        sampleset, seeded = self._sampler.sample(q.bqm, **kwargs), "seed" in kwargs
        pos = {p.candidate_ids[c]: c for c in q.variables}
        cols = [(j, pos[v]) for j, v in enumerate(sampleset.variables) if v in pos]
        best, best_obj, raw_ok = None, -math.inf, 0
        for row in sampleset.record.sample:
            x = np.zeros(n, dtype=np.int8)
            for j, c in cols:
                x[c] = row[j]
            raw_ok += int(is_feasible_standby(p, x))
            x = fill_choice(p, repair_choice(p, x))
            obj = standby_objective(p, x)
            if obj > best_obj:
                best, best_obj = x, obj
        read_obj = best_obj
        best = improve_choice(p, best, self.polish_passes)
        extra = {
            "polish_gain": standby_objective(p, best) - read_obj,
            "num_variables": q.bqm.num_variables,
            "num_interactions": q.bqm.num_interactions,
            "raw_feasible_reads": raw_ok,
            "reads": len(sampleset),
            "seeded": seeded,
            "encodings": dict(sorted(q.encodings.items())),
            "lagrange": dict(sorted(q.lagrange.items())),
        }
        return _result(p, self.name, best, "HEURISTIC", None, seed, t0, params, extra)


STANDBY_SOLVERS: dict[str, Callable[..., object]] = {
    "greedy": GreedyStandbySolver,
    "cpsat": CpSatStandbySolver,
    "anneal": AnnealingStandbySolver,
}
