"""CP-SAT as every family runs it: one worker, a deterministic-time budget, a wall-clock safety net.

Why deterministic time: with one worker the search depends only on the model and the seed, so
the same inputs give the same answer on a busy or a quiet machine; wall-clock limits would not.
The primary limit is ``max_deterministic_time`` (``UNITS_PER_S * time_limit_s`` unless a solver
overrides it); ``max_time_in_seconds`` is only a net for a machine so loaded that the
deterministic limit would take too long: ``wall_time_factor`` times the larger of
``time_limit_s`` and the limit's expected wall time. Only when that net stops a search
(``stopped_by == "wall_clock"``, logged as a warning) may the answer depend on load.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ortools.sat.python import cp_model

from policies.errors import SolverError

__all__ = ["UNITS_PER_S", "CpSatOutcome", "cpsat_solver", "run_cpsat", "stop_reason"]

log = logging.getLogger(__name__)

# Deterministic-time units per second of the caller's time limit (measured: one unit took
# 3 to 4.5 s of wall clock on this project's 2-core machines, so the budget stays well inside it).
UNITS_PER_S = 0.25


@dataclass(frozen=True)
class CpSatOutcome:
    status: str  # OPTIMAL | FEASIBLE | INFEASIBLE (the portfolio's names)
    cp_status: str  # CP-SAT's own name
    stopped_by: str | None  # None when the search finished, else "deterministic" or "wall_clock"


def cpsat_solver(
    *,
    seed: int,
    time_limit_s: float,
    deterministic_time: float | None = None,
    wall_time_factor: float = 3.0,
    presolve: bool | None = None,
) -> tuple[cp_model.CpSolver, dict]:
    """A one-worker solver with the limits of the module docstring, and its parameters for ``SolverInfo``.

    ``presolve`` None leaves CP-SAT's default (and out of the parameters).
    """
    dtime = UNITS_PER_S * float(time_limit_s) if deterministic_time is None else float(deterministic_time)
    wall_s = float(wall_time_factor) * max(float(time_limit_s), dtime / UNITS_PER_S)
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = int(seed) % 2**31
    solver.parameters.max_deterministic_time = dtime
    solver.parameters.max_time_in_seconds = wall_s
    params = {"num_workers": 1, "max_deterministic_time": dtime, "max_time_in_seconds": wall_s}
    if presolve is not None:
        solver.parameters.cp_model_presolve = bool(presolve)
        params["cp_model_presolve"] = bool(presolve)
    return solver, params


def stop_reason(solver: cp_model.CpSolver, status: int, dtime: float) -> str | None:
    """Which limit ended an unfinished search: None when CP-SAT finished (proved optimal or infeasible)."""
    if status in (cp_model.OPTIMAL, cp_model.INFEASIBLE):
        return None
    return "deterministic" if solver.deterministic_time >= dtime * (1 - 1e-9) else "wall_clock"


def run_cpsat(
    solver: cp_model.CpSolver, model: cp_model.CpModel, *, what: str, allow_infeasible: bool = False
) -> CpSatOutcome:
    """Solve and name the outcome; no answer within the limits (or INFEASIBLE, unless allowed) raises SolverError."""
    status = solver.solve(model)
    dtime, wall_s = solver.parameters.max_deterministic_time, solver.parameters.max_time_in_seconds
    stopped_by = stop_reason(solver, status, dtime)
    if stopped_by == "wall_clock":
        log.warning(
            "CP-SAT on %s stopped at the wall-clock net (%.3g s) before its deterministic limit "
            "(%.3g units): this answer may not repeat; raise wall_time_factor or lower "
            "deterministic_time",
            what,
            wall_s,
            dtime,
        )
    name = solver.status_name(status)
    if status == cp_model.INFEASIBLE and allow_infeasible:
        return CpSatOutcome("INFEASIBLE", name, stopped_by)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise SolverError(
            f"CP-SAT returned {name} for {what} within {dtime} deterministic units ({wall_s} s wall clock); "
            "raise time_limit_s"
        )
    return CpSatOutcome("OPTIMAL" if status == cp_model.OPTIMAL else "FEASIBLE", name, stopped_by)
