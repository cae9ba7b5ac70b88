"""Checks every solver and portfolio result must pass, shipped with the package (like dimod.testing).

Use them in a family's tests and in a new solver's tests::

    assert_solver_conforms(MySolver(), problem, objective=f, is_feasible=g, seed=3)

They raise ``AssertionError`` with a message that names the solver, the problem and what broke.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from policies.solve.portfolio import STATUSES, PolicyResult, PortfolioResult, SolverInfo

__all__ = ["assert_solver_conforms", "assert_result_consistent", "assert_portfolio_consistent"]

_FOUND = ("OPTIMAL", "FEASIBLE", "HEURISTIC")


def _close(a: float, b: float, rel: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=rel)


def assert_result_consistent(
    result: PolicyResult,
    problem: Any,
    *,
    objective: Callable[[Any, np.ndarray], float],
    is_feasible: Callable[[Any, np.ndarray], bool],
    sense: str = "max",
) -> None:
    """A result's fields are typed, its objective and feasibility are the exact ones, its bound holds."""
    who = f"{getattr(result.info, 'solver', '?')} on {problem.key!r}"
    assert isinstance(result, PolicyResult), f"{who}: got {type(result).__name__}, not PolicyResult"
    assert isinstance(result.info, SolverInfo), f"{who}: info is {type(result.info).__name__}"
    info = result.info
    assert result.problem_key == problem.key, f"{who}: problem_key {result.problem_key!r} != {problem.key!r}"
    assert isinstance(result.solution, np.ndarray), f"{who}: solution is not an ndarray"
    assert info.status in STATUSES and info.status != "ERROR", f"{who}: bad status {info.status!r}"
    assert isinstance(info.params, dict) and isinstance(info.versions, dict), f"{who}: params/versions not dicts"
    assert isinstance(info.seed, int), f"{who}: seed {info.seed!r} is not an int"
    assert math.isfinite(info.time_s) and info.time_s >= 0, f"{who}: bad time_s {info.time_s!r}"
    exact = float(objective(problem, result.solution))
    assert _close(result.objective, exact), f"{who}: objective {result.objective!r} != exact {exact!r}"
    assert _close(info.objective, exact), f"{who}: info.objective {info.objective!r} != exact {exact!r}"
    feasible = bool(is_feasible(problem, result.solution))
    assert result.feasible == feasible, f"{who}: feasible flag {result.feasible} but the check says {feasible}"
    if info.status in _FOUND:
        assert feasible, f"{who}: status {info.status} with an infeasible solution"
    if info.bound is not None and info.status in _FOUND:
        slack = 1e-9 * max(1.0, abs(info.bound))
        ok = info.bound >= exact - slack if sense == "max" else info.bound <= exact + slack
        assert ok, f"{who}: bound {info.bound!r} is on the wrong side of objective {exact!r} ({sense})"


def assert_solver_conforms(
    solver: Any,
    problem: Any,
    *,
    objective: Callable[[Any, np.ndarray], float],
    is_feasible: Callable[[Any, np.ndarray], bool],
    seed: int,
    time_limit_s: float = 10.0,
    sense: str = "max",
) -> PolicyResult:
    """Run ``solver`` twice with ``seed``: the contract holds and the same seed gives the same answer."""
    assert isinstance(getattr(solver, "name", None), str) and solver.name, "solver needs a non-empty str name"
    first = solver.solve(problem, seed=seed, time_limit_s=time_limit_s)
    assert_result_consistent(first, problem, objective=objective, is_feasible=is_feasible, sense=sense)
    assert first.info.solver == solver.name, f"info.solver {first.info.solver!r} != name {solver.name!r}"
    assert first.info.seed == seed, f"{solver.name}: info.seed {first.info.seed} != {seed}"
    again = solver.solve(problem, seed=seed, time_limit_s=time_limit_s)
    assert np.array_equal(first.solution, again.solution), f"{solver.name}: same seed, different solution"
    assert first.info.status == again.info.status, f"{solver.name}: same seed, different status"
    assert first.objective == again.objective, f"{solver.name}: same seed, different objective"
    return first


def assert_portfolio_consistent(
    result: PortfolioResult,
    problem: Any,
    *,
    objective: Callable[[Any, np.ndarray], float],
    is_feasible: Callable[[Any, np.ndarray], bool],
) -> None:
    """The best is feasible and no feasible candidate beats it; alternatives are distinct and ranked."""
    sign = 1.0 if result.sense == "max" else -1.0
    best = result.best
    assert best.feasible and is_feasible(problem, best.solution), f"{problem.key!r}: best is infeasible"
    assert _close(best.objective, float(objective(problem, best.solution))), f"{problem.key!r}: best objective"
    assert result.chosen == best.info.solver
    for c in result.candidates:
        if c.feasible:
            assert sign * c.objective <= sign * best.objective + 1e-12, f"{problem.key!r}: {c.info.solver} beats best"
    assert result.alternatives and result.alternatives[0] is best, f"{problem.key!r}: alternatives[0] is not best"
    seen = {a.solution.tobytes() for a in result.alternatives}
    assert len(seen) == len(result.alternatives), f"{problem.key!r}: alternatives are not distinct"
    objs = [sign * a.objective for a in result.alternatives]
    assert objs == sorted(objs, reverse=True), f"{problem.key!r}: alternatives are not ranked"
    if result.gap is not None:
        assert result.gap >= 0.0, f"{problem.key!r}: negative gap"
