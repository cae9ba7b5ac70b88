r"""The routing problem, its exact objective, feasibility and solvers (greedy and a GLOP LP).

Model (one problem per scenario; endpoints e of service j, latency samples k = 1..K)::

    minimize  sum_j [ sum_e x_e Lbar_e  +  M u_j  +  beta * CVaR_alpha( (sum_e x_e L_ke - SLA)^+ ) ]
    s.t.      sum_{e of j} x_e + u_j = 1,   0 <= x_e <= cap_e  (0 when e is down in the scenario)

x_e is the share of j's traffic sent to e, u_j the share that cannot be served (penalised at M ms),
L_ke a sampled latency (a failed endpoint in sample k shows the timeout), Lbar_e their mean.
CVaR is linearised the Rockafellar-Uryasev way: eta_j + sum_k xi_jk / ((1 - alpha) K) with
xi_jk >= sum_e x_e L_ke - SLA - eta_j, xi_jk >= 0, eta_j >= 0. The LP is exact, so GLOP's
optimum is proven; the greedy fills the fastest endpoints first. An annealer adds nothing to an
LP solved exactly in milliseconds and is not run for this family.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from ortools.linear_solver.python import model_builder as mb
from scipy import sparse

from policies.errors import SolverError
from policies.risk import cvar
from policies.solve.portfolio import PolicyResult
from policies.solve.result import build_result

__all__ = [
    "RoutingProblem",
    "routing_problem_from_dict",
    "routing_objective",
    "is_feasible_routing",
    "GreedyRoutingSolver",
    "LpRoutingSolver",
    "ROUTING_SOLVERS",
]

_TOL = 1e-7


@dataclass(frozen=True, eq=False)
class RoutingProblem:
    key: str
    endpoint_ids: tuple[str, ...]  # "service@region", sorted
    service_ids: tuple[str, ...]  # sorted
    locality: tuple[str, ...]  # region of each endpoint
    service: np.ndarray  # (n,) index into service_ids
    capacity: np.ndarray  # (n,) largest share of the service's traffic the endpoint takes (0 = down)
    samples: np.ndarray  # (K, n) latency in ms
    sla_ms: float = 250.0
    alpha: float = 0.95
    beta: float = 1.0
    unserved_penalty_ms: float = 10_000.0

    def __post_init__(self) -> None:
        n = len(self.endpoint_ids)
        if list(self.endpoint_ids) != sorted(set(self.endpoint_ids)):
            raise ValueError(f"{self.key}: endpoint_ids must be unique and sorted")
        if self.samples.ndim != 2 or self.samples.shape[1] != n or self.samples.shape[0] < 1:
            raise ValueError(f"{self.key}: samples must be (K >= 1, {n})")
        if not np.all(np.isfinite(self.samples)) or np.any(self.samples < 0):
            raise ValueError(f"{self.key}: latency samples must be finite and >= 0")
        if np.asarray(self.capacity).shape != (n,) or np.any(np.asarray(self.capacity) < 0):
            raise ValueError(f"{self.key}: capacity must be {n} numbers >= 0")
        if not 0 <= self.alpha < 1 or self.beta < 0 or self.unserved_penalty_ms < 0:
            raise ValueError(f"{self.key}: need 0 <= alpha < 1, beta >= 0, unserved_penalty_ms >= 0")


def routing_objective(p: RoutingProblem, x) -> float:
    """Exact objective above for weights ``x`` (u_j = 1 - sum of its weights)."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape != (len(p.endpoint_ids),):
        raise ValueError(f"{p.key}: expected {len(p.endpoint_ids)} weights, got shape {x.shape}")
    total = 0.0
    for j in range(len(p.service_ids)):
        e = np.flatnonzero(p.service == j)
        lat = p.samples[:, e] @ x[e]
        u = max(1.0 - float(x[e].sum()), 0.0)
        total += float(lat.mean()) + p.unserved_penalty_ms * u + p.beta * cvar(np.maximum(lat - p.sla_ms, 0.0), p.alpha)
    return total


def is_feasible_routing(p: RoutingProblem, x) -> bool:
    x = np.asarray(x, dtype=np.float64)
    if x.shape != (len(p.endpoint_ids),) or not np.all(np.isfinite(x)):
        return False
    if np.any(x < -_TOL) or np.any(x > p.capacity + _TOL):
        return False
    sums = np.bincount(p.service, weights=x, minlength=len(p.service_ids))
    return bool(np.all(sums <= 1 + _TOL))


def routing_problem_from_dict(doc: dict, *, key: str | None = None) -> RoutingProblem:
    """From the documented JSON form (docs/families.md, "Problem files and `qres solve`")."""
    eps, svc, loc, cap, cols = [], [], [], [], []
    services = sorted(doc.get("services", []), key=lambda s: str(s["service_id"]))
    if not services:
        raise ValueError("routing problem: 'services' must be a non-empty list")
    rows = []
    for j, s in enumerate(services):
        for e in s.get("endpoints", []):
            for f in ("endpoint_id", "locality", "capacity_share", "latency_ms"):
                if f not in e:
                    raise ValueError(f"routing problem: an endpoint of {s['service_id']!r} lacks field {f!r}")
            rows.append(
                (
                    str(e["endpoint_id"]),
                    j,
                    str(e["locality"]),
                    float(e["capacity_share"]),
                    np.asarray(e["latency_ms"], dtype=np.float64),
                )
            )
    rows.sort(key=lambda r: r[0])
    lens = {len(r[4]) for r in rows}
    if len(lens) != 1:
        raise ValueError(
            f"routing problem: every endpoint needs the same number of latency samples, got {sorted(lens)}"
        )
    for eid, j, lo, c, lat in rows:
        eps.append(eid), svc.append(j), loc.append(lo), cap.append(c), cols.append(lat)
    params = {k: float(doc[k]) for k in ("sla_ms", "alpha", "beta", "unserved_penalty_ms") if k in doc}
    return RoutingProblem(
        key=key or str(doc.get("key", "routing")),
        endpoint_ids=tuple(eps),
        service_ids=tuple(str(s["service_id"]) for s in services),
        locality=tuple(loc),
        service=np.array(svc, dtype=np.int64),
        capacity=np.array(cap),
        samples=np.column_stack(cols) if cols else np.zeros((1, 0)),
        **params,
    )


def _result(p, solver, x, status, bound, seed, t0, params, extra=None) -> PolicyResult:
    return build_result(
        p,
        solver,
        np.round(np.clip(np.asarray(x, dtype=np.float64), 0.0, None), 12),
        objective=routing_objective,
        is_feasible=is_feasible_routing,
        status=status,
        bound=bound,
        seed=seed,
        t0=t0,
        params=params,
        extra=extra,
    )


class GreedyRoutingSolver:
    """Fastest mean latency first, each endpoint up to its capacity. Instant."""

    name = "greedy"

    def solve(self, problem: RoutingProblem, *, seed: int, time_limit_s: float) -> PolicyResult:
        t0, p = time.perf_counter(), problem
        x = np.zeros(len(p.endpoint_ids))
        mean = p.samples.mean(axis=0)
        for j in range(len(p.service_ids)):
            left = 1.0
            for e in sorted(np.flatnonzero(p.service == j), key=lambda e: (mean[e], e)):
                x[e] = min(left, float(p.capacity[e]))
                left -= x[e]
        return _result(p, self.name, x, "HEURISTIC", None, seed, t0, {})


class LpRoutingSolver:
    """The LP above on OR-Tools GLOP (deterministic); its optimum is the bound."""

    name = "lp"

    def __init__(self, *, backend: str = "GLOP") -> None:
        self.backend = backend

    def solve(self, problem: RoutingProblem, *, seed: int, time_limit_s: float) -> PolicyResult:
        t0, p = time.perf_counter(), problem
        solver = mb.Solver(self.backend)
        if not solver.solver_is_supported():
            raise SolverError(f"OR-Tools backend {self.backend!r} is not available")
        solver.set_time_limit_in_seconds(max(time_limit_s, 0.001))
        model = mb.Model()
        # Built from arrays in one call (OR-Tools' sparse loader): one coefficient at a time
        # through the Python wrapper cost ~20 ms per scenario, more than GLOP's solve.
        model.helper.fill_model_from_sparse_data(*_lp_arrays(p))
        status = solver.solve(model)
        if status != mb.SolveStatus.OPTIMAL:
            raise SolverError(f"{self.backend} returned status {status.name} for routing {p.key!r}")
        x = solver.values([model.var_from_index(i) for i in range(len(p.endpoint_ids))]).to_numpy()
        value = solver.objective_value
        bound = value - 1e-6 * (1.0 + abs(value))  # LP tolerance
        return _result(p, self.name, x, "OPTIMAL", bound, seed, t0, {"backend": self.backend})


def _lp_arrays(p: RoutingProblem) -> tuple[np.ndarray, ...]:
    """Bounds, objective and the sparse rows of the LP; variables [x (n) | u (S) | eta (S) | xi (S*K)].

    Rows: for each service j, ``sum_e x_e + u_j = 1``; then, when beta > 0, for each (j, k),
    ``xi_jk + eta_j - sum_e L_ke x_e >= -SLA``.
    """
    n, n_s, k_n = len(p.endpoint_ids), len(p.service_ids), p.samples.shape[0]
    svc = np.asarray(p.service, dtype=np.int64)
    cvar_rows = p.beta > 0
    n_var = n + n_s + (n_s + n_s * k_n if cvar_rows else 0)
    lb = np.zeros(n_var)
    ub = np.full(n_var, np.inf)
    ub[:n] = np.asarray(p.capacity, dtype=np.float64)
    ub[n : n + n_s] = 1.0
    obj = np.zeros(n_var)
    obj[:n] = p.samples.mean(axis=0)
    obj[n : n + n_s] = p.unserved_penalty_ms
    # share rows: x_e -> row svc[e]; u_j -> row j
    rows = [svc, np.arange(n_s)]
    cols = [np.arange(n), n + np.arange(n_s)]
    coef = [np.ones(n), np.ones(n_s)]
    row_lb, row_ub = [np.ones(n_s)], [np.ones(n_s)]
    if cvar_rows:
        eta0, xi0 = n + n_s, n + 2 * n_s
        obj[eta0:xi0] = p.beta
        obj[xi0:] = p.beta / ((1.0 - p.alpha) * k_n)
        j_k = np.repeat(np.arange(n_s), k_n)  # service of each (j, k) row, j-major
        r = n_s + np.arange(n_s * k_n)
        rows += [r, r]
        cols += [xi0 + np.arange(n_s * k_n), eta0 + j_k]
        coef += [np.ones(n_s * k_n), np.ones(n_s * k_n)]
        # -L_ke x_e in row (svc[e], k) for every endpoint e and sample k
        e_k = np.repeat(np.arange(n), k_n)
        k_e = np.tile(np.arange(k_n), n)
        rows.append(n_s + svc[e_k] * k_n + k_e)
        cols.append(e_k)
        coef.append(-p.samples[k_e, e_k].astype(np.float64))
        row_lb.append(np.full(n_s * k_n, -p.sla_ms))
        row_ub.append(np.full(n_s * k_n, np.inf))
    n_rows = n_s * (1 + (k_n if cvar_rows else 0))
    matrix = sparse.csr_matrix(
        (np.concatenate(coef), (np.concatenate(rows), np.concatenate(cols))), shape=(n_rows, n_var)
    )
    return lb, ub, obj, np.concatenate(row_lb), np.concatenate(row_ub), matrix


ROUTING_SOLVERS = {"greedy": GreedyRoutingSolver, "lp": LpRoutingSolver}
