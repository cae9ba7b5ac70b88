"""Every family in the registry x every solver in its registry, through the shipped checks.

The problems are the shipped examples (data/examples/<family>.json), the files ``qres solve``
takes, so a new family or solver is covered by registering it and shipping an example.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from policies.families import FAMILIES, family
from policies.solve.anneal import AnnealParams
from policies.solve.digest import problem_digest
from policies.solve.portfolio import derive_seed
from policies.solve.result import solve_record
from policies.solve.testing import assert_portfolio_consistent, assert_solver_conforms

EXAMPLES = Path(__file__).resolve().parents[2] / "data" / "examples"
PAIRS = [(f, s) for f in FAMILIES for s in FAMILIES[f].solvers]
RECORD_FIELDS = {"status", "objective", "bound", "seed", "time_s", "params", "versions"}


def _problem(name: str):
    return family(name).from_dict(json.loads((EXAMPLES / f"{name}.json").read_text()))


def test_every_family_ships_an_example_and_the_cli_lists_them() -> None:
    from flows.cli.solve import FAMILIES as CLI_FAMILIES

    assert tuple(FAMILIES) == CLI_FAMILIES
    assert {p.stem for p in EXAMPLES.glob("*.json")} == set(FAMILIES)
    assert all(set(f.default_solvers) <= set(f.solvers) for f in FAMILIES.values())


@pytest.mark.parametrize(("name", "solver"), PAIRS, ids=[f"{f}-{s}" for f, s in PAIRS])
def test_solver_conforms(name: str, solver: str) -> None:
    fam = family(name)
    (built,) = fam.make_solvers([solver])
    result = assert_solver_conforms(
        built,
        _problem(name),
        objective=fam.objective,
        is_feasible=fam.is_feasible,
        seed=derive_seed(7, name),
        time_limit_s=1.0,
        sense=fam.sense,
    )
    assert result.feasible, f"{name}/{solver} found no feasible decision on the shipped example"


@pytest.mark.parametrize("name", list(FAMILIES))
def test_family_solve_is_a_consistent_portfolio_seeded_by_the_content(name: str) -> None:
    fam, problem = family(name), _problem(name)
    res = fam.solve(problem, seed=7, time_limit_s=1.0, anneal=AnnealParams(num_reads=4, num_sweeps=100))
    assert_portfolio_consistent(res, problem, objective=fam.objective, is_feasible=fam.is_feasible)
    assert res.sense == fam.sense
    assert {c.info.seed for c in res.candidates} == {derive_seed(7, problem_digest(problem))}
    ran = [c.info.solver for c in res.candidates]
    if fam.stop_when_proven:  # the solvers up to the first proven optimum, in order
        proven = [c.feasible and c.info.status == "OPTIMAL" for c in res.candidates]
        assert ran == list(fam.default_solvers)[: len(ran)] and (proven[-1] or len(ran) == len(fam.default_solvers))
        assert not any(proven[:-1])
    else:
        assert ran == list(fam.default_solvers)
    assert len(fam.variables(problem)) == np.asarray(res.best.solution).shape[0]
    # one provenance record, the same fields for every family, JSON as the manifest writes it
    record = solve_record(res)
    assert record["chosen"] == res.chosen and record["gap"] == res.gap
    for cand in record["candidates"].values():
        assert RECORD_FIELDS <= set(cand)
    json.dumps(record, allow_nan=False)


def test_unknown_names_name_the_known_ones() -> None:
    from policies.errors import ConfigError

    with pytest.raises(ConfigError, match="shedding"):
        family("nope")
    with pytest.raises(ConfigError, match="unknown routing solver"):
        family("routing").make_solvers(["cpsat"])
