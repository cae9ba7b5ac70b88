"""`qres solve FAMILY PROBLEM.json`: solve one documented problem file, for what-if analysis and debugging.

The file formats are in the README ("Problem files"); one example per family ships in
``data/examples/``. The answer is the same portfolio the nightly flow runs (or one solver of
it), with every candidate's exact objective, bound, gap, time and seed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from flows.cli.common import JsonOpt, console, fail, out
from policies.errors import ConfigError, QresError

__all__ = ["register", "solve_problem", "FAMILIES"]

FAMILIES = ("shedding", "tiers", "standby", "routing")
_SOLVER_CHOICES = ("portfolio", "greedy", "cpsat", "lp", "anneal")


def _shedding(doc: dict) -> tuple[Any, dict, Any, Any, str]:
    from policies.shedding.policy import SHEDDING_SOLVERS, SheddingProblem, is_feasible_shedding, shedding_objective

    wl = sorted(doc["workloads"], key=lambda w: str(w["workload_id"]))
    prob = SheddingProblem(
        scenario_key=str(doc.get("key", "shedding")),
        workload_ids=tuple(str(w["workload_id"]) for w in wl),
        value_per_hour=np.array([float(w["value_per_hour"]) for w in wl]),
        risk_per_hour=np.array([float(w.get("risk_per_hour", 0.0)) for w in wl]),
        demand=np.array([float(w["demand"]) for w in wl]),
        min_share=np.array([float(w.get("min_share", 0.0)) for w in wl]),
        runnable=np.array([bool(w.get("runnable", True)) for w in wl]),
        capacity=float(doc["capacity"]),
        levels=int(doc.get("levels", 4)),
    )
    return prob, SHEDDING_SOLVERS, shedding_objective, is_feasible_shedding, "max"


def _tiers(doc: dict):
    from policies.tiers.policy import TIER_SOLVERS, is_feasible_tiers, tier_objective, tier_problem_from_dict

    return tier_problem_from_dict(doc), TIER_SOLVERS, tier_objective, is_feasible_tiers, "min"


def _standby(doc: dict):
    from policies.standby.problem import is_feasible_standby, standby_objective, standby_problem_from_dict
    from policies.standby.solvers import STANDBY_SOLVERS

    return standby_problem_from_dict(doc), STANDBY_SOLVERS, standby_objective, is_feasible_standby, "max"


def _routing(doc: dict):
    from policies.routing.problem import (
        ROUTING_SOLVERS,
        is_feasible_routing,
        routing_objective,
        routing_problem_from_dict,
    )

    return routing_problem_from_dict(doc), ROUTING_SOLVERS, routing_objective, is_feasible_routing, "min"


_LOADERS = {"shedding": _shedding, "tiers": _tiers, "standby": _standby, "routing": _routing}


def _solution(x) -> list:
    arr = np.asarray(x)
    return [round(float(v), 9) for v in arr] if arr.dtype.kind == "f" else [int(v) for v in arr]


def solve_problem(
    family: str, doc: dict, *, solver: str = "portfolio", seed: int = 7, time_limit_s: float = 2.0, top_k: int = 3
) -> dict:
    """Solve one problem document; the result as a JSON-ready dict."""
    from policies.solve.portfolio import solve_portfolio

    if family not in _LOADERS:
        raise ConfigError(f"unknown family {family!r}; choose from {', '.join(FAMILIES)}")
    try:
        problem, registry, objective, feasible, sense = _LOADERS[family](doc)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"{family} problem file is not valid: {type(exc).__name__}: {exc} "
            f"(see README 'Problem files' and data/examples/{family}.json)"
        ) from exc
    names = list(registry) if solver == "portfolio" else [solver]
    if solver != "portfolio" and solver not in registry:
        raise ConfigError(f"solver {solver!r} does not apply to {family}; choose from portfolio, {', '.join(registry)}")
    res = solve_portfolio(
        problem,
        [registry[n]() for n in names],
        objective=objective,
        is_feasible=feasible,
        seed=seed,
        time_limit_s=time_limit_s,
        sense=sense,
        top_k=top_k,
    )
    ids = getattr(problem, "workload_ids", None) or getattr(problem, "candidate_ids", None) or problem.endpoint_ids
    return {
        "family": family,
        "key": problem.key,
        "sense": sense,
        "chosen": res.chosen,
        "objective": res.best.objective,
        "bound": res.bound,
        "gap": res.gap,
        "seed": seed,
        "variables": list(ids),
        "solution": _solution(res.best.solution),
        "candidates": [
            {
                "solver": c.info.solver,
                "status": c.info.status,
                "objective": c.objective,
                "bound": c.info.bound,
                "feasible": c.feasible,
                "time_s": round(c.info.time_s, 6),
                "message": c.info.message,
            }
            for c in res.candidates
        ],
        "alternatives": [
            {"rank": i, "solver": a.info.solver, "objective": a.objective, "solution": _solution(a.solution)}
            for i, a in enumerate(res.alternatives, start=1)
        ],
    }


def register(app: typer.Typer) -> None:
    @app.command("solve")
    def solve_cmd(
        family: Annotated[str, typer.Argument(help=f"Policy family: {', '.join(FAMILIES)}.")],
        problem_file: Annotated[
            Path,
            typer.Argument(
                help="Problem JSON (formats in the README; examples in data/examples/).", exists=True, dir_okay=False
            ),
        ],
        solver: Annotated[str, typer.Option("--solver", help=f"One of {', '.join(_SOLVER_CHOICES)}.")] = "portfolio",
        time_limit: Annotated[float, typer.Option("--time-limit", help="Seconds per solver.", min=0.001)] = 2.0,
        seed: Annotated[int, typer.Option("--seed", help="Seed (below 2**31).", min=0, max=2**31 - 1)] = 7,
        json_out: JsonOpt = False,
    ) -> None:
        """Solve one problem file with the portfolio (or one solver) and print every candidate."""
        if solver not in _SOLVER_CHOICES:
            fail(ConfigError(f"--solver must be one of {', '.join(_SOLVER_CHOICES)}, got {solver!r}"))
        try:
            doc = json.loads(problem_file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            fail(ConfigError(f"cannot read {problem_file} as JSON: {exc}"))
        try:
            result = solve_problem(family, doc, solver=solver, seed=seed, time_limit_s=time_limit)
        except QresError as exc:
            fail(exc)
        if json_out:
            out.print_json(json.dumps(result))
            return
        table = Table(title=f"{family} {result['key']} ({result['sense']}imize)")
        for col in ("solver", "status", "objective", "bound", "feasible", "time_s"):
            table.add_column(col)
        for c in result["candidates"]:
            table.add_row(
                c["solver"],
                c["status"],
                f"{c['objective']:.6g}",
                "-" if c["bound"] is None else f"{c['bound']:.6g}",
                str(c["feasible"]),
                f"{c['time_s']:.3f}",
            )
        out.print(table)
        gap = "n/a" if result["gap"] is None else f"{result['gap']:.4%}"
        console.print(f"chosen {result['chosen']}: objective {result['objective']:.6g}, gap {gap}")
