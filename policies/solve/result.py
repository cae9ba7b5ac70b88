"""The one way a solver's answer becomes a :class:`PolicyResult`, and the one provenance record of a solve.

Every family's solvers build their results here (bound to the family's exact objective and
feasibility), so a result is always judged by the family's numbers, never the solver's. The
provenance record (:func:`solve_record`) is what bundle manifests and MLflow keep about a solve,
the same fields for every family: per candidate its solver, status, objective, bound, seed,
parameters, package versions and time; per problem the choice, the best bound and the gap.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from policies.solve.portfolio import PolicyResult, PortfolioResult, SolverInfo, package_versions

__all__ = ["build_result", "solve_record", "ANNEAL_VERSIONS", "CPSAT_VERSIONS"]

CPSAT_VERSIONS = ("numpy", "ortools")  # families without a QUBO path
ANNEAL_VERSIONS = (*CPSAT_VERSIONS, "dimod", "dwave-samplers")  # families with one


def build_result(
    problem: Any,
    solver: str,
    solution: np.ndarray,
    *,
    objective: Callable[[Any, np.ndarray], float],
    is_feasible: Callable[[Any, np.ndarray], bool],
    status: str,
    bound: float | None,
    seed: int,
    t0: float,
    params: dict | None = None,
    versions: Sequence[str] = CPSAT_VERSIONS,
    extra: dict | None = None,
    message: str = "",
) -> PolicyResult:
    """A read-only copy of ``solution`` with its exact objective and feasibility; ``t0`` from perf_counter."""
    x = np.array(solution, copy=True)
    x.setflags(write=False)
    obj = objective(problem, x)
    info = SolverInfo(
        solver=solver,
        status=status,
        objective=obj,
        bound=bound,
        seed=seed,
        time_s=time.perf_counter() - t0,
        params=params or {},
        versions=package_versions(*versions),
        message=message,
        extra=extra or {},
    )
    return PolicyResult(problem.key, x, obj, is_feasible(problem, x), info)


def _number(x: float | None) -> float | None:
    """JSON has no NaN (an ERROR candidate's objective): None instead."""
    return None if x is None or not math.isfinite(x) else float(x)


def solve_record(result: PortfolioResult, *, probability: float | None = None) -> dict:
    """The provenance of one portfolio solve, JSON-ready (``probability``: the scenario's, when there is one)."""
    record = {
        "scenario": result.problem_key,
        "chosen": result.chosen,
        "objective": _number(result.best.objective),
        "bound": _number(result.bound),
        "gap": result.gap,
        "candidates": {
            c.info.solver: {
                "status": c.info.status,
                "objective": _number(c.objective),
                "bound": _number(c.info.bound),
                "seed": c.info.seed,
                "time_s": c.info.time_s,
                "params": c.info.params,
                "versions": c.info.versions,
                **({"message": c.info.message} if c.info.message else {}),
            }
            for c in result.candidates
        },
    }
    if probability is not None:
        record["probability"] = probability
    return record
