"""Tier assignment: replay of the shedder by hand, CP-SAT against brute force, feasibility, labels."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.risk import cvar
from policies.solve.portfolio import solve_portfolio
from policies.solve.testing import assert_portfolio_consistent
from policies.tiers.policy import tier_labels, tiers_table
from policies.tiers.problem import TierProblem, is_feasible_tiers, tier_losses, tier_objective
from policies.tiers.solvers import TIER_SOLVERS


def random_problem(seed: int, n: int = 6, S: int = 5, T: int = 3) -> TierProblem:
    rng = np.random.default_rng(seed)
    return TierProblem(
        f"t{seed}",
        tuple(f"w{i}" for i in range(n)),
        rng.uniform(1, 100, n),
        rng.uniform(1, 10, n),
        rng.random((S, n)) < 0.8,
        rng.uniform(5, 40, S),
        rng.random(S) + 0.01,
        tiers=T,
        alpha=0.8,
    )


def test_shedder_replay_by_hand() -> None:
    p = TierProblem(
        "h",
        ("a", "b", "c"),
        np.array([10.0, 5.0, 1.0]),
        np.array([2.0, 2.0, 2.0]),
        np.array([[True, True, True], [True, False, True]]),
        np.array([4.0, 1.0]),
        np.array([0.5, 0.5]),
        tiers=2,
        alpha=0.5,
        lam=1.0,
    )
    # tiers a:0, b:0, c:1 -> s0: tier 0 (4) fits, tier 1 (6) does not -> lose 1; s1: tier 0 needs 2 > 1 -> lose 11
    assert tier_losses(p, [0, 0, 1]).tolist() == [1.0, 11.0]
    assert cvar(np.array([1.0, 11.0]), 0.5, probabilities=p.probability) == pytest.approx(11.0)
    assert tier_objective(p, [0, 0, 1]) == pytest.approx(6.0 + 11.0)


@pytest.mark.parametrize("seed", range(4))
def test_cpsat_matches_brute_force(seed: int) -> None:
    p = random_problem(seed)
    res = solve_portfolio(
        p,
        [TIER_SOLVERS["greedy"](), TIER_SOLVERS["cpsat"]()],
        objective=tier_objective,
        is_feasible=is_feasible_tiers,
        seed=seed,
        time_limit_s=2.0,
        sense="min",
    )
    assert_portfolio_consistent(res, p, objective=tier_objective, is_feasible=is_feasible_tiers)
    best = min(tier_objective(p, np.array(t)) for t in itertools.product(range(p.tiers), repeat=len(p.workload_ids)))
    cp = next(c for c in res.candidates if c.info.solver == "cpsat")
    assert cp.info.status == "OPTIMAL" and cp.objective == pytest.approx(best, rel=1e-9)
    assert cp.info.bound <= best + 1e-9
    # The bound carries no worst-case slack: rounding down keeps it valid, so a proven
    # optimum is also a tight one (only the scales' rounding is left).
    assert best - cp.info.bound <= 1e-4 * max(best, 1.0)


@pytest.mark.parametrize("seed", range(3))
def test_bound_stays_valid_and_tight_with_rare_costly_scenarios(seed: int) -> None:
    """Tiny-probability, high-loss scenarios (what CVaR is about) and one large value: the
    case where rounding to a fixed probability scale used to dominate the gap."""
    rng = np.random.default_rng(100 + seed)
    n, S = 6, 6
    prob = np.concatenate([[0.99], rng.uniform(1e-7, 1e-5, S - 1)])
    value = np.concatenate([[5e4], rng.uniform(1, 100, n - 1)])
    p = TierProblem(
        f"r{seed}",
        tuple(f"w{i}" for i in range(n)),
        value,
        rng.uniform(1, 10, n),
        rng.random((S, n)) < 0.9,
        np.concatenate([[1e3], rng.uniform(5, 25, S - 1)]),
        prob,
        tiers=3,
        alpha=0.9,
        lam=2.0,
    )
    best = min(tier_objective(p, np.array(t)) for t in itertools.product(range(p.tiers), repeat=n))
    cp = TIER_SOLVERS["cpsat"]().solve(p, seed=seed, time_limit_s=2.0)
    assert cp.info.status == "OPTIMAL" and cp.objective == pytest.approx(best, rel=1e-6)
    assert cp.info.bound <= best * (1 + 1e-12) and best - cp.info.bound <= 1e-3 * best


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**20), T=st.integers(1, 5))
def test_published_tiers_are_feasible_and_labelled(seed: int, T: int) -> None:
    p = random_problem(seed, n=10, S=4, T=T)
    res = solve_portfolio(
        p,
        [TIER_SOLVERS["greedy"]()],
        objective=tier_objective,
        is_feasible=is_feasible_tiers,
        seed=seed,
        time_limit_s=1.0,
        sense="min",
    )
    assert is_feasible_tiers(p, res.best.solution)
    table = tiers_table(p, res.best.solution)
    assert table.num_rows == 10 and set(table.column("criticality").to_pylist()) <= {
        "CRITICAL_PLUS",
        "CRITICAL",
        "SHEDDABLE_PLUS",
        "SHEDDABLE",
    }


def test_labels_span_both_ends() -> None:
    assert tier_labels(0, 4) == ("CRITICAL_PLUS", "CRITICAL", 100)
    assert tier_labels(3, 4) == ("SHEDDABLE", "BULK", 0)
    assert tier_labels(0, 1)[0] == "CRITICAL_PLUS"
    assert tier_labels(5, 6)[0] == "SHEDDABLE"


@pytest.mark.parametrize("seed", range(3))
def test_scenarios_that_fit_or_repeat_are_folded_without_changing_the_optimum(seed: int) -> None:
    """Scenarios where everything runnable fits cost nothing under any assignment, and repeated
    scenarios cost the same: the model keeps one row per distinct binding scenario."""
    base = random_problem(10 + seed, n=6, S=3, T=3)
    fits = np.full(4, base.demand.sum() + 1.0)  # roomy: every tier admitted
    runnable = np.vstack([base.runnable, base.runnable[:2], np.ones((4, 6), bool)])
    capacity = np.concatenate([base.capacity, base.capacity[:2], fits])
    prob = np.concatenate([base.probability, [0.3, 0.2], [0.5, 0.1, 0.1, 0.1]])
    p = TierProblem(
        f"f{seed}", base.workload_ids, base.value, base.demand, runnable, capacity, prob, tiers=3, alpha=0.8, lam=1.5
    )
    cp = TIER_SOLVERS["cpsat"]().solve(p, seed=seed, time_limit_s=2.0)
    best = min(tier_objective(p, np.array(t)) for t in itertools.product(range(p.tiers), repeat=6))
    binding = {
        (p.runnable[s].tobytes(), p.capacity[s])
        for s in range(len(capacity))
        if (p.demand * p.runnable[s]).sum() > p.capacity[s]
    }
    assert cp.info.extra["scenarios_modelled"] == len(binding) <= 3
    assert cp.info.status == "OPTIMAL" and cp.objective == pytest.approx(best, rel=1e-9)
    assert cp.info.bound <= best + 1e-9 and best - cp.info.bound <= 1e-4 * max(best, 1.0)
