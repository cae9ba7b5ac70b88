r"""The tier solvers behind the one contract of :mod:`policies.solve.portfolio`, and their registry.

CP-SAT model: z_wt one-hot, a_ts admitted tiers with a_ts >= a_(t+1)s, u_ws = sum_t z_wt a_ts
(linearised both ways), sum_w d_w u_ws <= C_s, and CVaR the Rockafellar-Uryasev way:
eta + sum_s p_s xi_s / (1 - alpha), xi_s >= loss_s - eta, xi_s >= 0. The greedy baseline
sorts workloads by expected value density (v_w P(w runnable) / d_w) and cuts tiers at the
capacity quantiles. Both are judged by :func:`policies.tiers.problem.tier_objective`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
from ortools.sat.python import cp_model

from policies.solve.cpsat import cpsat_solver, run_cpsat
from policies.solve.portfolio import PolicyResult
from policies.solve.result import build_result
from policies.tiers.problem import TierProblem, is_feasible_tiers, tier_objective

__all__ = ["GreedyTierSolver", "CpSatTierSolver", "TIER_SOLVERS"]

# Largest |objective| of the CP-SAT model in integer units: 2^56 leaves 128x headroom below int64.
_OBJECTIVE_BUDGET = 2.0**56


def _result(p, solver, tier, status, bound, seed, t0, params, extra=None) -> PolicyResult:
    return build_result(
        p,
        solver,
        np.asarray(tier, dtype=np.int64),
        objective=tier_objective,
        is_feasible=is_feasible_tiers,
        status=status,
        bound=bound,
        seed=seed,
        t0=t0,
        params=params,
        extra=extra,
    )


def _greedy_tiers(p: TierProblem) -> np.ndarray:
    dens = p.value * (p.probability @ p.runnable) / np.maximum(p.demand, 1e-12)
    order = np.lexsort((np.arange(len(dens)), -dens))
    cum = np.cumsum(p.demand[order])
    cuts = np.quantile(p.capacity, [(p.tiers - 1 - t) / p.tiers for t in range(p.tiers - 1)]) if p.tiers > 1 else []
    tier = np.full(len(order), p.tiers - 1, dtype=np.int64)
    for pos, w in enumerate(order):
        for t, cut in enumerate(sorted(cuts)):
            if cum[pos] <= cut + p.tolerance:
                tier[w] = t
                break
    return tier


class GreedyTierSolver:
    """Expected value density order, tiers cut at capacity quantiles. Instant."""

    name = "greedy"

    def solve(self, problem: TierProblem, *, seed: int, time_limit_s: float) -> PolicyResult:
        t0 = time.perf_counter()
        return _result(problem, self.name, _greedy_tiers(problem), "HEURISTIC", None, seed, t0, {})


class CpSatTierSolver:
    """The CP-SAT model of the module docstring; one worker, deterministic time limit."""

    name = "cpsat"

    def solve(self, problem: TierProblem, *, seed: int, time_limit_s: float) -> PolicyResult:
        t0, p = time.perf_counter(), problem
        n, T = len(p.workload_ids), p.tiers
        # Integer scales, every rounding DOWN: scaled values, probabilities and CVaR weights never
        # exceed the true ones and every loss is >= 0, so the scaled objective is <= the true
        # one for every assignment and CP-SAT's bound is a valid bound with no slack term.
        # The probability scale takes what the int64 objective range leaves (_OBJECTIVE_BUDGET).
        sv = 1e6 / max(float(p.value.max()), 1e-12)
        vi = np.floor(p.value * sv).astype(np.int64)
        weight = 2.0 + p.lam + p.lam / (1 - p.alpha)  # |objective| <= sp * sum(vi) * weight
        sp_ = float(max(1e6, math.floor(_OBJECTIVE_BUDGET / max(float(vi.sum()) * weight, 1.0))))
        tol = p.tolerance
        sd = 2.0 * max(n, 1) / tol
        di = np.floor(p.demand * sd).astype(np.int64)
        caps = np.floor((p.capacity + tol / 2) * sd).astype(np.int64)
        modelled = _binding_scenarios(p.runnable, di, caps, p.probability)
        m = cp_model.CpModel()
        z = [[m.new_bool_var(f"z{w}_{t}") for t in range(T)] for w in range(n)]
        for w in range(n):
            m.add_exactly_one(z[w])
        a = [[m.new_bool_var(f"a{t}_{s}") for s in range(len(modelled))] for t in range(T)]
        eta = m.new_int_var(0, int(vi.sum()), "eta")
        obj_terms, obj_coef = [eta], [int(math.floor(p.lam * sp_))]
        pi = np.floor(np.array([prob for _, prob in modelled]) * sp_).astype(np.int64)
        rows = [s for s, _ in modelled]
        for s, row in enumerate(rows):
            for t in range(T - 1):
                m.add_implication(a[t + 1][s], a[t][s])
            run = np.flatnonzero(p.runnable[row])
            u = {}
            for w in run:
                u[w] = m.new_bool_var(f"u{w}_{s}")
                for t in range(T):
                    m.add_bool_or([u[w], z[w][t].Not(), a[t][s].Not()])  # z & a -> u
                    m.add_bool_or([u[w].Not(), z[w][t].Not(), a[t][s]])  # u & z -> a
            m.add(cp_model.LinearExpr.weighted_sum([u[w] for w in run], [int(di[w]) for w in run]) <= int(caps[row]))
            loss = int(vi[run].sum()) - cp_model.LinearExpr.weighted_sum([u[w] for w in run], [int(vi[w]) for w in run])
            xi = m.new_int_var(0, int(vi.sum()), f"xi{s}")
            m.add(xi >= loss - eta)
            # objective: p_s loss_s + lambda p_s xi_s / (1 - alpha)
            obj_terms += [u[w] for w in run] + [xi]
            obj_coef += [-int(pi[s] * vi[w]) for w in run] + [int(math.floor(p.lam * pi[s] / (1 - p.alpha)))]
        const = int(sum(int(pi[s]) * int(vi[p.runnable[row]].sum()) for s, row in enumerate(rows)))
        m.minimize(cp_model.LinearExpr.weighted_sum(obj_terms, obj_coef) + const)
        for w, t in enumerate(_greedy_tiers(p).tolist()):
            m.add_hint(z[w][t], 1)
        solver, params = cpsat_solver(seed=seed, time_limit_s=time_limit_s)
        outcome = run_cpsat(solver, m, what=f"tiers {p.key!r}")
        tier = np.array([next(t for t in range(T) if solver.value(z[w][t])) for w in range(n)], dtype=np.int64)
        # Valid as it stands (see the scales above); what is left of the gap is rounding (relative
        # 1/vi_w and 1/pi_s at most) plus whatever CP-SAT did not prove in its time.
        bound = solver.best_objective_bound / (sv * sp_)
        extra = {"cp_status": outcome.cp_status, "stopped_by": outcome.stopped_by, "scenarios_modelled": len(rows)}
        return _result(p, self.name, tier, outcome.status, bound, seed, t0, params, extra)


def _binding_scenarios(
    runnable: np.ndarray, demand: np.ndarray, capacity: np.ndarray, probability: np.ndarray
) -> list[tuple[int, float]]:
    """(first row, summed probability) of each distinct scenario in which the capacity binds.

    Why: where every runnable workload fits (in the model's integer units), every tier is
    admitted whatever the assignment and the loss is 0, which adds nothing to the expectation
    and nothing to the CVaR term (eta >= 0); scenarios with the same runnable set and capacity
    lose the same under every assignment, so one row with their summed probability is the same
    objective. On the sample 42 of 44 scenarios fit, and the whole solve went from 0.7 s to 0.07 s.
    """
    groups: dict[tuple[bytes, int], list] = {}
    for s in range(len(capacity)):
        run = runnable[s]
        if int(demand[run].sum()) <= int(capacity[s]):
            continue
        entry = groups.setdefault((np.packbits(run).tobytes(), int(capacity[s])), [s, 0.0])
        entry[1] += float(probability[s])
    return [(row, prob) for row, prob in groups.values()]


TIER_SOLVERS: dict[str, Callable[..., object]] = {"greedy": GreedyTierSolver, "cpsat": CpSatTierSolver}
