"""Standby: exact objective by hand, solvers against brute force, feasibility (hypothesis), planted QUBO optimum."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import dimod
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies.solve.portfolio import solve_portfolio
from policies.solve.testing import assert_portfolio_consistent, assert_solver_conforms
from policies.standby.policy import STANDBY, standby_actions
from policies.standby.problem import is_feasible_standby, standby_objective, standby_problem_from_dict
from policies.standby.qubo import build_standby_qubo
from policies.standby.solvers import STANDBY_SOLVERS

EXAMPLE = Path(__file__).resolve().parents[2] / "data" / "examples" / "standby.json"


def random_doc(seed: int, n_services: int = 3, per_service: int = 2, integral: bool = False) -> dict:
    rng = np.random.default_rng(seed)
    sites = [
        {"site_id": f"s{i}", "region": f"r{i % 2}" if i < 2 else None, "budget": float(rng.integers(20, 60))}
        for i in range(3)
    ]
    cands, k = [], 0
    for j in range(n_services):
        for _ in range(per_service):
            cost = float(rng.integers(5, 40)) if integral else round(float(rng.uniform(5, 40)), 2)
            cands.append(
                {
                    "candidate_id": f"c{k:02d}",
                    "service_id": f"svc{j}",
                    "site_id": f"s{rng.integers(0, 3)}",
                    "cost": cost,
                    "coverage": round(float(rng.uniform(0.2, 1.0)), 2),
                }
            )
            k += 1
    scen = [{"key": "normal", "probability": 0.5, "down": []}]
    for i in range(6):
        down = [f"svc{j}" for j in range(n_services) if rng.random() < 0.5] + [f"r{i % 2}"] * int(rng.random() < 0.5)
        scen.append({"key": f"k{i}", "probability": float(rng.uniform(0.01, 0.1)), "down": down})
    return {
        "sites": sites,
        "candidates": cands,
        "scenarios": scen,
        "services": [
            {"service_id": f"svc{j}", "value_per_hour": float(rng.integers(100, 1000))} for j in range(n_services)
        ],
    }


def brute_force(p) -> float:
    best = -1.0
    for bits in itertools.product((0, 1), repeat=len(p.candidate_ids)):
        x = np.array(bits)
        if is_feasible_standby(p, x):
            best = max(best, standby_objective(p, x))
    return best


def test_objective_by_hand() -> None:
    doc = {
        "sites": [{"site_id": "a", "region": "r1", "budget": 10}, {"site_id": "b", "region": None, "budget": 10}],
        "candidates": [
            {"candidate_id": "c1", "service_id": "x", "site_id": "a", "cost": 5, "coverage": 0.5},
            {"candidate_id": "c2", "service_id": "x", "site_id": "b", "cost": 5, "coverage": 0.8},
        ],
        "services": [{"service_id": "x", "value_per_hour": 100}],
        "scenarios": [
            {"key": "x", "probability": 0.1, "down": ["x"]},
            {"key": "x+r1", "probability": 0.2, "down": ["x", "r1"]},
        ],
    }
    p = standby_problem_from_dict(doc)
    assert standby_objective(p, [1, 0]) == pytest.approx(0.1 * 50)  # its site is down in x+r1
    assert standby_objective(p, [0, 1]) == pytest.approx(0.3 * 80)
    assert standby_objective(p, [1, 1]) == pytest.approx(0.3 * 80)  # worth less together: c2 covers more anyway
    assert p.at_stake == pytest.approx(30.0)


@pytest.mark.parametrize("seed", range(6))
def test_cpsat_matches_brute_force_and_portfolio_is_consistent(seed: int) -> None:
    p = standby_problem_from_dict(random_doc(seed))
    res = STANDBY.solve(p, seed=seed, time_limit_s=2.0)
    assert_portfolio_consistent(res, p, objective=standby_objective, is_feasible=is_feasible_standby)
    cp = next(c for c in res.candidates if c.info.solver == "cpsat")
    assert cp.info.status == "OPTIMAL"
    assert cp.objective == pytest.approx(brute_force(p), rel=1e-9, abs=1e-9)
    assert res.best.objective >= max(c.objective for c in res.candidates if c.feasible) - 1e-12


@pytest.mark.parametrize("name", sorted(STANDBY_SOLVERS))
def test_solvers_conform(name: str) -> None:
    p = standby_problem_from_dict(json.loads(EXAMPLE.read_text()))
    assert_solver_conforms(
        STANDBY_SOLVERS[name](),
        p,
        objective=standby_objective,
        is_feasible=is_feasible_standby,
        seed=5,
        time_limit_s=1.0,
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**20), per=st.integers(1, 4))
def test_every_published_solution_is_feasible(seed: int, per: int) -> None:
    p = standby_problem_from_dict(random_doc(seed, per_service=per))
    res = solve_portfolio(
        p,
        [STANDBY_SOLVERS["greedy"](), STANDBY_SOLVERS["anneal"](num_reads=4, num_sweeps=100)],
        objective=standby_objective,
        is_feasible=is_feasible_standby,
        seed=seed,
        time_limit_s=1.0,
    )
    for alt in res.alternatives:
        assert is_feasible_standby(p, alt.solution)
    actions = standby_actions(p, random_doc(seed, per_service=per), res.best.solution, {"svc0"})
    assert sum(a["admit"] for a in actions if a["service_id"] == "svc0") <= 1.0


@pytest.mark.parametrize("seed", range(4))
def test_planted_optimum_is_the_bqm_ground_state(seed: int) -> None:
    """At most two copies per service (the surrogate is exact) and integer costs (exact budgets):
    with penalty_factor > 1 the BQM's ground state restricted to the candidates is the true optimum."""
    p = standby_problem_from_dict(random_doc(seed, n_services=2, per_service=2, integral=True))
    q = build_standby_qubo(p, penalty_factor=1.5)
    assert q.bqm.num_variables <= 22
    ground = dimod.ExactSolver().sample(q.bqm).first.sample
    x = np.array([int(ground.get(c, 0)) for c in p.candidate_ids])
    assert is_feasible_standby(p, x)
    assert standby_objective(p, x) == pytest.approx(brute_force(p), rel=1e-9, abs=1e-9)
    # the energy of a feasible choice is minus its exact objective (slack bits set at their best)
    assert dimod.ExactSolver().sample(q.bqm).first.energy == pytest.approx(-brute_force(p), rel=1e-9, abs=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_polish_never_loses_and_stays_feasible(seed: int) -> None:
    """Drop-one-and-refill on the exact objective: feasible, never worse, never above the optimum."""
    from policies.standby.solvers import fill_choice, improve_choice, repair_choice

    p = standby_problem_from_dict(random_doc(seed, n_services=4, per_service=3))
    rng = np.random.default_rng(seed)
    start = fill_choice(p, np.zeros(len(p.candidate_ids), dtype=np.int8))
    for x in (start, repair_choice(p, rng.random(len(p.candidate_ids)) < 0.5)):
        y = improve_choice(p, x, passes=3)
        assert is_feasible_standby(p, y)
        assert standby_objective(p, x) <= standby_objective(p, y) <= brute_force(p) + 1e-9
    assert np.array_equal(improve_choice(p, start, 2), improve_choice(p, start, 2)), "deterministic"
