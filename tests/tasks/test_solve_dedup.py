"""Equal problems under different keys are solved once, and the shared answer is the one each would get."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from policies.families import family
from policies.solve.anneal import AnnealParams
from policies.solve.digest import problem_digest, problem_groups
from tasks.solve import solve_problems

EXAMPLES = Path(__file__).resolve().parents[2] / "data" / "examples"
ANNEAL = AnnealParams(num_reads=4, num_sweeps=100)


def _renamed(problem, key: str):
    field = "scenario_key" if hasattr(problem, "scenario_key") else "key"
    return dataclasses.replace(problem, **{field: key})


def _example(name: str):
    return family(name).from_dict(json.loads((EXAMPLES / f"{name}.json").read_text()))


def test_the_digest_ignores_the_key_but_not_the_content() -> None:
    p = _example("shedding")
    assert problem_digest(_renamed(p, "other")) == problem_digest(p)
    changed = dataclasses.replace(p, capacity=p.capacity * 0.5)
    assert problem_digest(changed) != problem_digest(p)
    assert problem_groups([p, changed, _renamed(p, "b"), _renamed(changed, "c")]) == [[0, 2], [1, 3]]


@pytest.mark.parametrize("name", ["shedding", "routing"])
def test_dedup_gives_the_decisions_of_solving_each_problem(name: str) -> None:
    fam, p = family(name), _example(name)
    other = dataclasses.replace(p, capacity=p.capacity * 0.5)  # a second, different problem
    problems = [_renamed(p, "a"), _renamed(other, "b"), _renamed(p, "c"), _renamed(p, "d"), _renamed(other, "e")]
    params = {"seed": 11, "time_limit_s": 1.0, "top_k": 3, "anneal": ANNEAL}
    shared, solved = solve_problems(name, problems, **params)
    assert solved == 2  # one solve per distinct problem
    one_by_one = [fam.solve_each([q], **params)[0] for q in problems]
    for q, got, alone in zip(problems, shared, one_by_one, strict=True):
        assert got.problem_key == q.key == alone.problem_key
        assert {c.problem_key for c in (got.best, *got.candidates, *got.alternatives)} == {q.key}
        assert got.chosen == alone.chosen
        np.testing.assert_array_equal(got.best.solution, alone.best.solution)
        assert got.best.objective == alone.best.objective
        assert [c.info.seed for c in got.candidates] == [c.info.seed for c in alone.candidates]


def test_a_proven_optimum_skips_the_later_solvers_without_changing_the_choice() -> None:
    fam, p = family("shedding"), _example("shedding")
    params = {"seed": 3, "time_limit_s": 1.0, "anneal": ANNEAL}
    every = dataclasses.replace(fam, stop_when_proven=False).solve_each([p], **params)[0]
    short = fam.solve_each([p], **params)[0]
    statuses = [c.info.status for c in every.candidates]
    assert "OPTIMAL" in statuses[:-1]  # the example is proven before the annealer runs
    assert [c.info.solver for c in short.candidates] == [c.info.solver for c in every.candidates][
        : len(short.candidates)
    ]
    assert len(short.candidates) < len(every.candidates)
    assert short.chosen == every.chosen and short.gap == every.gap == 0.0
    np.testing.assert_array_equal(short.best.solution, every.best.solution)


def test_a_seeded_annealer_gives_equal_problems_one_answer_whatever_their_key() -> None:
    fam = dataclasses.replace(family("shedding"), stop_when_proven=False)  # the annealer always runs
    p = _example("shedding")
    params = {"seed": 11, "time_limit_s": 1.0, "anneal": ANNEAL}
    together = fam.solve_each([_renamed(p, "a"), _renamed(p, "b")], **params)
    alone = fam.solve_each([_renamed(p, "b")], **params)[0]
    assert [c.info.solver for c in alone.candidates][-1] == "anneal"
    for got in together:
        for c, ref in zip(got.candidates, alone.candidates, strict=True):
            np.testing.assert_array_equal(c.solution, ref.solution)
            assert c.info.seed == ref.info.seed
