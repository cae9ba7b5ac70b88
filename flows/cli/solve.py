"""`qres solve FAMILY PROBLEM.json`: solve one documented problem file, for what-if analysis and debugging.

The file formats are in docs/families.md ("Problem files and `qres solve`"); one example per family ships in
``data/examples/``. The answer is the same portfolio the nightly flow runs (or one solver of
it), with every candidate's exact objective, bound, gap, time and seed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flows.cli.common import ConfigOpt, JsonOpt, abs_path, console, fail, load_settings, out

if TYPE_CHECKING:
    from policies.solve.anneal import AnnealParams
from policies.errors import ConfigError, QresError

__all__ = ["register", "solve_problem", "FAMILIES"]

FAMILIES = ("shedding", "tiers", "standby", "routing", "horizon")  # the order of policies.families.FAMILIES
_SOLVER_CHOICES = ("portfolio", "greedy", "cpsat", "lp", "anneal")


def _solution(x) -> list:
    import numpy as np

    arr = np.asarray(x)
    return [round(float(v), 9) for v in arr] if arr.dtype.kind == "f" else [int(v) for v in arr]


def solve_problem(
    family_name: str,
    doc: dict,
    *,
    solver: str = "portfolio",
    seed: int = 7,
    time_limit_s: float = 2.0,
    top_k: int = 3,
    anneal: AnnealParams | None = None,
) -> dict:
    """Solve one problem document as the nightly does; the result as a JSON-ready dict.

    ``seed`` is the run seed: the problem's own seed is derived from it and the problem's content
    (``problem_seed`` in the result), exactly as the nightly seeds each scenario, so a nightly
    scenario's problem with the nightly's seed and settings gives the nightly's decision.
    """
    from policies.families import family

    fam = family(family_name)
    try:
        problem = fam.from_dict(doc)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"{family_name} problem file is not valid: {type(exc).__name__}: {exc} "
            f"(see docs/families.md and data/examples/{family_name}.json)"
        ) from exc
    if solver != "portfolio" and solver not in fam.solvers:
        raise ConfigError(
            f"solver {solver!r} does not apply to {family_name}; choose from portfolio, {', '.join(fam.solvers)}"
        )
    res = fam.solve(
        problem,
        seed=seed,
        time_limit_s=time_limit_s,
        solvers=None if solver == "portfolio" else [solver],
        anneal=anneal,
        top_k=top_k,
    )
    return _result_document(fam, problem, res, seed)


def _result_document(fam, problem, res, seed: int) -> dict:
    return {
        "family": fam.name,
        "key": problem.key,
        "sense": fam.sense,
        "chosen": res.chosen,
        "objective": res.best.objective,
        "bound": res.bound,
        "gap": res.gap,
        "seed": seed,
        "problem_seed": fam.problem_seed(seed, problem),
        "variables": list(fam.variables(problem)),
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


def _time_limit(settings, family_name: str) -> float:
    """The nightly's time limit for the family (its CP-SAT budget follows it)."""
    return settings.solve.time_limit_s if family_name == "shedding" else settings.families.time_limit_s


def solve_cmd(
    family: Annotated[str, typer.Argument(metavar="FAMILY", help=f"Policy family: {', '.join(FAMILIES)}.")],
    problem_file: Annotated[
        Path,
        typer.Argument(
            help="Problem JSON (formats in docs/families.md; examples in data/examples/).",
            exists=True,
            dir_okay=False,
        ),
    ],
    solver: Annotated[str, typer.Option("--solver", help=f"One of {', '.join(_SOLVER_CHOICES)}.")] = "portfolio",
    time_limit: Annotated[
        float | None,
        typer.Option(
            "--time-limit",
            help="Seconds per solver (default: the config's, solve.time_limit_s for shedding, "
            "families.time_limit_s for the others).",
            min=0.001,
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            help="Run seed (below 2**31; default: the config's). The problem's seed is derived from it and "
            "the problem's content, as the nightly seeds each scenario.",
            min=0,
            max=2**31 - 1,
        ),
    ] = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Solve one problem file with the portfolio (or one solver) and print every candidate.

    The seed and the annealer settings come from the config (as in the nightly), so a nightly
    scenario's problem gives the nightly's decision."""
    if solver not in _SOLVER_CHOICES:
        fail(ConfigError(f"--solver must be one of {', '.join(_SOLVER_CHOICES)}, got {solver!r}"))
    try:
        doc = json.loads(problem_file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        fail(ConfigError(f"cannot read {problem_file} as JSON: {exc}"))
    try:
        settings = load_settings(abs_path(config))
        result = solve_problem(
            family,
            doc,
            solver=solver,
            seed=settings.seed if seed is None else seed,
            time_limit_s=time_limit or _time_limit(settings, family),
            anneal=_anneal_params(settings),
        )
    except QresError as exc:
        fail(exc)
    if json_out:
        out.print_json(json.dumps(result))
        return
    _print_result(family, result)


def _print_result(family: str, result: dict) -> None:
    from rich.table import Table

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


def register(app: typer.Typer) -> None:
    app.command("solve")(solve_cmd)


def _anneal_params(settings):
    from flows.params import anneal_params

    return anneal_params(settings)
