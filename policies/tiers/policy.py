r"""One robust tier assignment for runtime load shedders, across all scenarios at once.

Model (workloads w, tiers t = 0 (shed last) .. T-1 (shed first), scenarios s with probability
p_s, capacity C_s and runnable set R_s)::

    minimize   E_s[loss_s] + lambda * CVaR_alpha(loss_s)
    loss_s   = sum_{w in R_s} v_w (1 - u_ws)
    u_ws     = 1 iff tier(w) <= t*_s, where t*_s is the last tier whose cumulative runnable
               demand fits C_s: the runtime shedder drops the lowest tiers first, whole tiers.

CP-SAT model: z_wt one-hot, a_ts admitted tiers with a_ts >= a_(t+1)s, u_ws = sum_t z_wt a_ts
(linearised both ways), sum_w d_w u_ws <= C_s, and CVaR the Rockafellar-Uryasev way:
eta + sum_s p_s xi_s / (1 - alpha), xi_s >= loss_s - eta, xi_s >= 0. The greedy baseline
sorts workloads by expected value density (v_w P(w runnable) / d_w) and cuts tiers at the
capacity quantiles. Both are scored by :func:`tier_objective`, which replays the shedder.
Export: Google's criticalities (CRITICAL_PLUS, CRITICAL, SHEDDABLE_PLUS, SHEDDABLE) and
Netflix-style buckets with a 0..100 priority.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from ortools.sat.python import cp_model

from policies.errors import SolverError
from policies.solve.cpsat import UNITS_PER_S
from policies.solve.portfolio import PolicyResult, SolverInfo, package_versions
from qres_client.schema import DECISIONS_TIERS

__all__ = [
    "TierProblem",
    "tier_problem_from_dict",
    "tier_problem_from_shedding",
    "tier_losses",
    "tier_objective",
    "is_feasible_tiers",
    "weighted_cvar",
    "GreedyTierSolver",
    "CpSatTierSolver",
    "TIER_SOLVERS",
    "CRITICALITIES",
    "BUCKETS",
    "tier_labels",
    "tiers_table",
    "tiers_document",
]

# Largest |objective| of the CP-SAT model in integer units: 2^56 leaves 128x headroom below int64.
_OBJECTIVE_BUDGET = 2.0**56
CRITICALITIES = ("CRITICAL_PLUS", "CRITICAL", "SHEDDABLE_PLUS", "SHEDDABLE")
BUCKETS = ("CRITICAL", "DEGRADED", "BEST_EFFORT", "BULK")


@dataclass(frozen=True, eq=False)
class TierProblem:
    key: str
    workload_ids: tuple[str, ...]
    value: np.ndarray  # (n,)
    demand: np.ndarray  # (n,)
    runnable: np.ndarray  # (S, n) bool
    capacity: np.ndarray  # (S,)
    probability: np.ndarray  # (S,), normalised to sum 1
    tiers: int = 4
    alpha: float = 0.9
    lam: float = 1.0

    def __post_init__(self) -> None:
        n, S = len(self.workload_ids), len(self.capacity)
        if list(self.workload_ids) != sorted(set(self.workload_ids)):
            raise ValueError(f"{self.key}: workload_ids must be unique and sorted")
        if self.runnable.shape != (S, n) or self.probability.shape != (S,) or S < 1:
            raise ValueError(f"{self.key}: runnable must be (S, n) and probability (S,), S >= 1")
        if self.tiers < 1 or not 0 <= self.alpha < 1 or self.lam < 0:
            raise ValueError(f"{self.key}: need tiers >= 1, 0 <= alpha < 1, lambda >= 0")
        if np.any(self.value < 0) or np.any(self.demand < 0) or not self.probability.sum() > 0:
            raise ValueError(f"{self.key}: values and demands must be >= 0 and some probability > 0")
        object.__setattr__(self, "probability", self.probability / self.probability.sum())

    @property
    def tolerance(self) -> float:
        return 1e-9 * max(float(self.capacity.max()), float(self.demand.sum()), 1.0)


def tier_problem_from_dict(doc: dict, *, key: str | None = None) -> TierProblem:
    """From the documented JSON form (README, "tiers problem file")."""
    wl = sorted(doc["workloads"], key=lambda w: str(w["workload_id"]))
    ids = [str(w["workload_id"]) for w in wl]
    sc = doc["scenarios"]
    runnable = np.array([[w not in set(s.get("not_runnable", [])) for w in ids] for s in sc], dtype=bool)
    return TierProblem(
        key=key or str(doc.get("key", "tiers")),
        workload_ids=tuple(ids),
        value=np.array([float(w["value_per_hour"]) for w in wl]),
        demand=np.array([float(w["demand"]) for w in wl]),
        runnable=runnable.reshape(len(sc), len(ids)),
        capacity=np.array([float(s["capacity"]) for s in sc]),
        probability=np.array([float(s["probability"]) for s in sc]),
        tiers=int(doc.get("tiers", 4)),
        alpha=float(doc.get("alpha", 0.9)),
        lam=float(doc.get("lambda", 1.0)),
    )


def tier_problem_from_shedding(
    problems, probabilities, *, tiers: int = 4, alpha: float = 0.9, lam: float = 1.0, key: str = "tiers"
) -> TierProblem:
    """From the per-scenario shedding problems (same workloads, in the same order) and their probabilities."""
    first = problems[0]
    return TierProblem(
        key=key,
        workload_ids=first.workload_ids,
        value=np.asarray(first.value_per_hour, dtype=float),
        demand=np.asarray(first.demand, dtype=float),
        runnable=np.array([pr.runnable for pr in problems], dtype=bool),
        capacity=np.array([pr.capacity for pr in problems], dtype=float),
        probability=np.maximum(np.asarray(probabilities, dtype=float), 0.0),
        tiers=tiers,
        alpha=alpha,
        lam=lam,
    )


def weighted_cvar(losses: np.ndarray, prob: np.ndarray, alpha: float) -> float:
    """CVaR_alpha of a discrete loss: the probability-weighted mean of the worst 1 - alpha mass."""
    order = np.argsort(-losses, kind="stable")
    left, total = 1.0 - alpha, 0.0
    for i in order:
        take = min(float(prob[i]), left)
        total += take * float(losses[i])
        left -= take
        if left <= 1e-15:
            break
    return total / (1.0 - alpha)


def tier_losses(p: TierProblem, tier) -> np.ndarray:
    """Replay the runtime shedder: per scenario, the runnable value lost by dropping whole tiers."""
    t = np.asarray(tier, dtype=np.int64)
    onehot = np.zeros((len(t), p.tiers))
    onehot[np.arange(len(t)), t] = 1.0
    run = p.runnable.astype(np.float64)
    cum = np.cumsum((run * p.demand) @ onehot, axis=1)  # (S, T) cumulative runnable demand
    admitted = cum <= p.capacity[:, None] + p.tolerance
    admitted = np.cumprod(admitted, axis=1).astype(bool)  # prefix only
    kept = (run * p.value) @ (onehot * 1.0) * admitted
    return (run @ p.value) - kept.sum(axis=1)


def tier_objective(p: TierProblem, tier) -> float:
    tier = np.asarray(tier)
    if tier.shape != (len(p.workload_ids),):
        raise ValueError(f"{p.key}: expected {len(p.workload_ids)} tiers, got shape {tier.shape}")
    loss = tier_losses(p, tier)
    return float(p.probability @ loss) + p.lam * weighted_cvar(loss, p.probability, p.alpha)


def is_feasible_tiers(p: TierProblem, tier) -> bool:
    tier = np.asarray(tier)
    return tier.shape == (len(p.workload_ids),) and bool(np.all((tier >= 0) & (tier < p.tiers)))


def _result(p, solver, tier, status, bound, seed, t0, params, extra=None) -> PolicyResult:
    tier = np.asarray(tier, dtype=np.int64).copy()
    tier.setflags(write=False)
    obj = tier_objective(p, tier)
    info = SolverInfo(
        solver=solver,
        status=status,
        objective=obj,
        bound=bound,
        seed=seed,
        time_s=time.perf_counter() - t0,
        params=params,
        versions=package_versions("numpy", "ortools"),
        extra=extra or {},
    )
    return PolicyResult(p.key, tier, obj, is_feasible_tiers(p, tier), info)


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
        dtime = UNITS_PER_S * float(time_limit_s)
        solver = cp_model.CpSolver()
        solver.parameters.num_workers = 1
        solver.parameters.random_seed = int(seed) % 2**31
        solver.parameters.max_deterministic_time = dtime
        solver.parameters.max_time_in_seconds = 3.0 * max(float(time_limit_s), dtime / UNITS_PER_S)
        status = solver.solve(m)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            raise SolverError(f"CP-SAT returned {solver.status_name(status)} for tiers {p.key!r}; raise time_limit_s")
        tier = np.array([next(t for t in range(T) if solver.value(z[w][t])) for w in range(n)], dtype=np.int64)
        # Valid as it stands (see the scales above); what is left of the gap is rounding (relative
        # 1/vi_w and 1/pi_s at most) plus whatever CP-SAT did not prove in its time.
        bound = solver.best_objective_bound / (sv * sp_)
        st = "OPTIMAL" if status == cp_model.OPTIMAL else "FEASIBLE"
        return _result(
            p,
            self.name,
            tier,
            st,
            bound,
            seed,
            t0,
            {"max_deterministic_time": dtime, "num_workers": 1},
            {"cp_status": solver.status_name(status), "scenarios_modelled": len(rows)},
        )


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


TIER_SOLVERS = {"greedy": GreedyTierSolver, "cpsat": CpSatTierSolver}


def tier_labels(tier: int, tiers: int) -> tuple[str, str, int]:
    """Google criticality, Netflix-style bucket and a 0..100 priority (higher = shed later) of a tier."""
    k = 0 if tiers == 1 else round(tier * (len(CRITICALITIES) - 1) / (tiers - 1))  # first and last tiers at the ends
    priority = 100 if tiers == 1 else round(100 * (tiers - 1 - tier) / (tiers - 1))
    return CRITICALITIES[k], BUCKETS[k], int(priority)


def tiers_table(p: TierProblem, tier) -> pa.Table:
    rows = [(w, int(t), *tier_labels(int(t), p.tiers)) for w, t in zip(p.workload_ids, np.asarray(tier).tolist())]
    return pa.Table.from_pylist([dict(zip(DECISIONS_TIERS.names, r)) for r in rows], schema=DECISIONS_TIERS)


def tiers_document(p: TierProblem, result) -> dict:
    loss = tier_losses(p, result.best.solution)
    return {
        "schema_version": 1,
        "policy": "tiers",
        "tiers": p.tiers,
        "alpha": p.alpha,
        "lambda": p.lam,
        "solver": result.chosen,
        "objective": round(result.best.objective, 6),
        "bound": None if result.bound is None else round(result.bound, 6),
        "gap": None if result.gap is None else float(f"{result.gap:.12g}"),
        "expected_loss": round(float(p.probability @ loss), 6),
        "cvar_loss": round(weighted_cvar(loss, p.probability, p.alpha), 6),
        "alternatives": [
            {
                "rank": i,
                "solver": a.info.solver,
                "objective": round(a.objective, 6),
                "expected_loss": round(float(p.probability @ tier_losses(p, a.solution)), 6),
            }
            for i, a in enumerate(result.alternatives, start=1)
        ],
        "workloads": [
            dict(
                zip(
                    ("workload_id", "tier", "criticality", "bucket", "priority"),
                    (w, int(t), *tier_labels(int(t), p.tiers)),
                )
            )
            for w, t in zip(p.workload_ids, np.asarray(result.best.solution).tolist())
        ],
    }
