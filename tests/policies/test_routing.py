"""Routing: LP against a brute-force grid, feasibility (hypothesis), Envoy/Istio export."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.routing.policy import ROUTING, envoy_weights, istio_distribute
from policies.routing.problem import (
    ROUTING_SOLVERS,
    is_feasible_routing,
    routing_objective,
    routing_problem_from_dict,
)
from policies.solve.testing import assert_portfolio_consistent, assert_solver_conforms

EXAMPLE = Path(__file__).resolve().parents[2] / "data" / "examples" / "routing.json"


def random_doc(seed: int, n_ep: int = 2, k: int = 20) -> dict:
    rng = np.random.default_rng(seed)
    eps = [
        {
            "endpoint_id": f"svc@r{i}",
            "locality": f"r{i}",
            "capacity_share": float(rng.choice([0.0, 0.4, 0.7, 1.0])),
            "latency_ms": np.round(rng.gamma(2.0, 60.0 + 40 * i, k), 3).tolist(),
        }
        for i in range(n_ep)
    ]
    return {
        "key": f"r{seed}",
        "sla_ms": 200.0,
        "alpha": 0.9,
        "beta": 2.0,
        "unserved_penalty_ms": 5000.0,
        "services": [{"service_id": "svc", "home": "r0", "endpoints": eps}],
    }


@pytest.mark.parametrize("seed", range(5))
def test_lp_matches_a_fine_grid(seed: int) -> None:
    p = routing_problem_from_dict(random_doc(seed))
    res = ROUTING.solve(p, seed=seed, time_limit_s=2.0)
    assert_portfolio_consistent(res, p, objective=routing_objective, is_feasible=is_feasible_routing)
    grid = np.linspace(0, 1, 201)
    best = min(
        routing_objective(p, np.array([a, b]))
        for a, b in itertools.product(grid, grid)
        if is_feasible_routing(p, np.array([a, b]))
    )
    lp = next(c for c in res.candidates if c.info.solver == "lp")
    assert lp.objective <= best + 1e-6  # the LP optimum is at least as good as any grid point
    assert lp.info.bound <= lp.objective + 1e-9


@pytest.mark.parametrize("name", sorted(ROUTING_SOLVERS))
def test_solvers_conform(name: str) -> None:
    p = routing_problem_from_dict(json.loads(EXAMPLE.read_text()))
    assert_solver_conforms(
        ROUTING_SOLVERS[name](), p, objective=routing_objective, is_feasible=is_feasible_routing, seed=3, sense="min"
    )


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**20), n=st.integers(1, 4))
def test_every_published_solution_is_feasible(seed: int, n: int) -> None:
    p = routing_problem_from_dict(random_doc(seed, n_ep=n))
    res = ROUTING.solve(p, seed=seed, time_limit_s=2.0)
    for alt in res.alternatives:
        assert is_feasible_routing(p, alt.solution)
    w = envoy_weights(res.best.solution)
    assert all(v >= 1 for v, x in zip(w, res.best.solution) if x > 1e-9)
    assert all(v == 0 for v, x in zip(w, res.best.solution) if x <= 1e-9)


def test_envoy_and_istio_exports() -> None:
    assert envoy_weights([0.5, 0.5, 0.0]) == [50, 50, 0]
    assert envoy_weights([0.999, 0.001]) == [100, 1]  # a small positive share keeps weight 1, never 0
    assert envoy_weights([0.0, 0.0]) == [0, 0]
    p = routing_problem_from_dict(random_doc(1, n_ep=3))
    dist = istio_distribute(p, np.array([0.2, 0.3, 0.5]), {"svc": "r0"})
    assert dist == [{"service": "svc", "from": "r0/*", "to": {"r0/*": 20, "r1/*": 30, "r2/*": 50}}]
