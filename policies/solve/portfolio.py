"""One solver contract for every policy family, and the portfolio that runs it.

Like dimod's ``Sampler -> SampleSet``: a solver is any object with a ``name`` and
``solve(problem, *, seed, time_limit_s) -> PolicyResult``. A problem is any object
with a ``key`` (a stable string naming the instance). The portfolio never trusts a
solver's own numbers: it re-evaluates every candidate on the family's exact objective
and feasibility functions, picks the best feasible one (ties go to the earlier solver,
so the choice is deterministic), reports the gap to the best bound any candidate
proved, and keeps the top-k distinct feasible solutions as ranked alternatives.

A solver that raises is recorded as status ``ERROR`` (message in ``info.message``,
traceback logged) and the others go on; only when every solver errors does the
portfolio raise :class:`~policies.errors.SolverError`, and when none found a feasible
decision it raises :class:`~policies.errors.InfeasiblePolicyError`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from policies.errors import InfeasiblePolicyError, SolverError

__all__ = [
    "STATUSES",
    "SolverInfo",
    "PolicyResult",
    "Solver",
    "PortfolioResult",
    "solve_portfolio",
    "derive_seed",
    "rekeyed",
    "package_versions",
]

log = logging.getLogger(__name__)

# ERROR is set by the portfolio only, for a solver that raised.
STATUSES = ("OPTIMAL", "FEASIBLE", "HEURISTIC", "INFEASIBLE", "ERROR")
SEED_LIMIT = 2**31  # dwave-samplers and CP-SAT both take seeds below this


@dataclass(frozen=True)
class SolverInfo:
    """How a result was made: enough to reproduce it and to judge it."""

    solver: str
    status: str  # one of STATUSES
    objective: float  # the exact objective of the solution (same as PolicyResult.objective)
    bound: float | None  # proven bound on the optimum (upper for max), None if the solver proves none
    seed: int
    time_s: float
    params: dict
    versions: dict
    message: str = ""  # why, for ERROR/INFEASIBLE
    extra: dict = field(default_factory=dict)  # family-specific facts (e.g. min_share_relaxed)


@dataclass(frozen=True, eq=False)
class PolicyResult:
    """One solver's decision for one problem, with its exact objective."""

    problem_key: str
    solution: np.ndarray
    objective: float
    feasible: bool
    info: SolverInfo


@runtime_checkable
class Solver(Protocol):
    name: str

    def solve(self, problem: Any, *, seed: int, time_limit_s: float) -> PolicyResult: ...


@dataclass(frozen=True, eq=False)
class PortfolioResult:
    """The chosen decision for one problem plus everything that was tried."""

    problem_key: str
    best: PolicyResult
    candidates: tuple[PolicyResult, ...]  # every solver's result, in solver order
    gap: float | None  # (bound - best) / max(|bound|, 1e-9); 0 when proven optimal; None without a bound
    chosen: str  # name of the chosen solver
    alternatives: tuple[PolicyResult, ...]  # top-k distinct feasible solutions, best first
    bound: float | None = None  # the tightest bound any candidate proved
    sense: str = "max"


@functools.cache
def package_versions(*packages: str) -> dict[str, str]:
    """Installed versions of ``packages`` (for SolverInfo.versions)."""
    out = {}
    for p in packages:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "unknown"
    return out


def rekeyed(result: PortfolioResult, key: str) -> PortfolioResult:
    """``result`` as the answer to an equal problem named ``key`` (shared by the solve's dedup)."""
    if result.problem_key == key:
        return result

    def one(r: PolicyResult) -> PolicyResult:
        return dataclasses.replace(r, problem_key=key)

    return dataclasses.replace(
        result,
        problem_key=key,
        best=one(result.best),
        candidates=tuple(map(one, result.candidates)),
        alternatives=tuple(map(one, result.alternatives)),
    )


def derive_seed(seed: int, *parts: object) -> int:
    """A child seed below 2**31 from ``seed`` and ``parts`` (stable across runs and machines)."""
    text = "\x1f".join([str(int(seed)), *map(str, parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") % SEED_LIMIT


def solve_portfolio(
    problem: Any,
    solvers: Sequence[Solver],
    *,
    objective: Callable[[Any, np.ndarray], float],
    is_feasible: Callable[[Any, np.ndarray], bool],
    seed: int,
    time_limit_s: float,
    sense: Literal["max", "min"] = "max",
    top_k: int = 3,
    stop_when_proven: bool = False,
) -> PortfolioResult:
    """Run every solver on ``problem``, re-evaluate exactly, keep the best feasible one.

    ``stop_when_proven``: the solvers after one that proved its feasible answer optimal are not
    run (they cannot beat it, and ties go to the earlier solver, so the choice is the same);
    ``candidates`` then holds the solvers that ran. It matters where a later solver is costly
    and only adds alternatives: the shedding annealer on a fleet's scenarios.
    """
    if sense not in ("max", "min"):
        raise ValueError(f"sense must be 'max' or 'min', got {sense!r}")
    if not solvers:
        raise ValueError("solve_portfolio needs at least one solver")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if not time_limit_s > 0:
        raise ValueError(f"time_limit_s must be > 0, got {time_limit_s!r}")
    key = str(problem.key)
    ran: list[PolicyResult] = []
    for s in solvers:
        ran.append(_run_one(s, problem, key, objective, is_feasible, seed, time_limit_s, sense))
        if stop_when_proven and ran[-1].feasible and ran[-1].info.status == "OPTIMAL":
            break
    candidates = tuple(ran)
    if all(c.info.status == "ERROR" for c in candidates):
        detail = "; ".join(f"{c.info.solver}: {c.info.message}" for c in candidates)
        raise SolverError(f"every solver failed on problem {key!r}: {detail}")
    feasible = [i for i, c in enumerate(candidates) if c.feasible]
    if not feasible:
        detail = ", ".join(
            f"{c.info.solver}={c.info.status}" + (f" ({c.info.message})" if c.info.message else "") for c in candidates
        )
        raise InfeasiblePolicyError(
            f"no solver found a feasible decision for problem {key!r}: {detail}. "
            "Check the problem's capacity and minimum shares."
        )
    sign = 1.0 if sense == "max" else -1.0
    # Highest (max) exact objective; stable sort keeps solver order on ties.
    ranked = sorted(feasible, key=lambda i: -sign * candidates[i].objective)
    best = candidates[ranked[0]]
    alternatives: list[PolicyResult] = []
    seen: set[bytes] = set()
    for i in ranked:
        sol = np.ascontiguousarray(candidates[i].solution)
        digest = sol.dtype.str.encode() + sol.tobytes()
        if digest not in seen:
            seen.add(digest)
            alternatives.append(candidates[i])
        if len(alternatives) == top_k:
            break
    proven = any(c.feasible and c.info.status == "OPTIMAL" for c in candidates)
    bound = _best_bound(candidates, sense)
    gap = 0.0 if proven else _relative_gap(best.objective, bound, sense, key)
    return PortfolioResult(
        problem_key=key,
        best=best,
        candidates=candidates,
        gap=gap,
        chosen=best.info.solver,
        alternatives=tuple(alternatives),
        bound=bound,
        sense=sense,
    )


def _run_one(solver, problem, key, objective, is_feasible, seed, time_limit_s, sense) -> PolicyResult:
    """Run one solver; turn an exception into an ERROR result and re-check its numbers."""
    name = str(getattr(solver, "name", type(solver).__name__))
    t0 = time.perf_counter()
    try:
        res = solver.solve(problem, seed=seed, time_limit_s=time_limit_s)
        if not isinstance(res, PolicyResult):
            raise TypeError(f"solver {name!r} returned {type(res).__name__}, not PolicyResult")
        solution = np.asarray(res.solution)
        exact = float(objective(problem, solution))
        ok = bool(is_feasible(problem, solution)) and res.info.status not in ("INFEASIBLE", "ERROR")
    except Exception as exc:
        log.error("solver %s failed on problem %s", name, key, exc_info=True)
        info = SolverInfo(
            solver=name,
            status="ERROR",
            objective=math.nan,
            bound=None,
            seed=seed,
            time_s=time.perf_counter() - t0,
            params={},
            versions={},
            message=f"{type(exc).__name__}: {exc}",
        )
        return PolicyResult(key, np.empty(0, dtype=np.int64), math.nan, False, info)
    if not math.isclose(exact, res.objective, rel_tol=1e-9, abs_tol=1e-9):
        log.warning("solver %s reported objective %r on %s, exact is %r", name, res.objective, key, exact)
    info = res.info
    if info.objective != exact:
        info = dataclasses.replace(info, objective=exact)
    return dataclasses.replace(res, problem_key=key, solution=solution, objective=exact, feasible=ok, info=info)


def _best_bound(candidates: Sequence[PolicyResult], sense: str) -> float | None:
    bounds = [c.info.bound for c in candidates if c.info.status != "ERROR" and c.info.bound is not None]
    bounds = [b for b in bounds if math.isfinite(b)]
    if not bounds:
        return None
    return min(bounds) if sense == "max" else max(bounds)


def _relative_gap(best: float, bound: float | None, sense: str, key: str) -> float | None:
    if bound is None:
        return None
    diff = (bound - best) if sense == "max" else (best - bound)
    gap = diff / max(abs(bound), 1e-9)
    if gap < -1e-6:
        log.warning(
            "bound %r is on the wrong side of objective %r for %s: a solver's bound is invalid", bound, best, key
        )
    return max(gap, 0.0)
