"""Shedding solvers against brute force, the solver contract, and repeatable CP-SAT limits."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies.errors import ConfigError
from policies.shedding.problem import SheddingProblem, is_feasible_shedding
from policies.shedding.solvers import (
    AnnealingSheddingSolver,
    CpSatSheddingSolver,
    GreedySheddingSolver,
)
from policies.solve.cpsat import UNITS_PER_S
from policies.solve.portfolio import solve_portfolio
from policies.solve.testing import assert_portfolio_consistent, assert_solver_conforms
from tests.policies.shedding_cases import FAMILY, make_problem

SOLVERS = [GreedySheddingSolver(), CpSatSheddingSolver(), AnnealingSheddingSolver()]


# -- an independent brute force --------------------------------------------------------------


def spec_lower_levels(p: SheddingProblem) -> np.ndarray:
    """The minimum levels as the model states them, written independently of the package."""
    L = p.levels
    m = np.where(p.runnable, p.min_share, 0.0)
    need = np.ceil(np.round(m * L, 9))
    if need @ p.demand / L <= p.capacity * (1 + 1e-12):
        return need
    f = p.capacity / (m @ p.demand)
    return np.minimum(need, np.floor(np.round(f * m * L, 9)))


_GRIDS: dict[tuple[int, int], np.ndarray] = {}


def brute_force(p: SheddingProblem) -> tuple[float, np.ndarray]:
    n, L = len(p.workload_ids), p.levels
    grid = _GRIDS.setdefault((n, L), np.array(list(itertools.product(range(L + 1), repeat=n))))
    ok = np.all(grid >= spec_lower_levels(p), axis=1) & np.all(grid[:, ~p.runnable] == 0, axis=1)
    ok &= grid @ p.demand / L <= p.capacity + 1e-9 * max(p.capacity, p.demand.sum())
    obj = grid @ (p.value_per_hour - p.risk_per_hour) / L
    i = int(np.argmax(np.where(ok, obj, -np.inf)))
    assert ok[i], "the model must always be feasible"
    return float(obj[i]), grid[i]


CASES = [(s, f, n) for s in range(10) for f, n in (("mixed", 7), ("relax", 6), ("tight", 6))]


@pytest.mark.parametrize(("seed", "flavour", "n"), CASES)
def test_solvers_against_brute_force(seed, flavour, n):
    p = make_problem(seed, n, flavour=flavour)
    opt, _ = brute_force(p)
    tol = 1e-7 * max(1.0, abs(opt))
    np.testing.assert_array_equal(p.bounds.lo, spec_lower_levels(p))
    results = {s.name: s.solve(p, seed=seed, time_limit_s=5.0) for s in SOLVERS}
    cp = results["cpsat"]
    assert cp.info.status == "OPTIMAL" and cp.feasible
    assert cp.objective == pytest.approx(opt, abs=tol)
    for res in results.values():
        assert res.feasible and is_feasible_shedding(p, res.solution)
        assert res.objective <= opt + tol
        if res.info.bound is not None:
            assert res.info.bound >= opt - tol
    # negative-net runnable workloads sit exactly at their minimum in the optimum
    neg = p.runnable & (p.value_per_hour < p.risk_per_hour)
    np.testing.assert_array_equal(cp.solution[neg], p.bounds.lo[neg])
    port = solve_portfolio(p, SOLVERS, seed=seed, time_limit_s=5.0, **FAMILY)
    assert port.best.objective == pytest.approx(opt, abs=tol)
    assert port.gap == 0.0
    assert_portfolio_consistent(port, p, **FAMILY)
    if flavour == "relax":
        assert p.bounds.relaxed and cp.info.extra["min_share_relaxed"]
        mass = np.where(p.runnable, p.min_share, 0) @ p.demand
        assert cp.info.extra["min_share_factor"] == pytest.approx(p.capacity / mass)


@pytest.mark.parametrize(
    "solver",
    SOLVERS + [AnnealingSheddingSolver(sampler="dimod.RandomSampler")],
    ids=lambda s: f"{s.name}-{getattr(s, 'sampler', '')}",
)
@pytest.mark.parametrize("flavour", ["mixed", "relax", "tight"])
def test_solvers_conform(solver, flavour):
    p = make_problem(3, 7, flavour=flavour)
    assert_solver_conforms(solver, p, seed=11, **FAMILY)


def test_solvers_conform_on_sixty_workloads():
    rng = np.random.default_rng(5)
    n = 60
    ids = tuple(f"w{i:02d}" for i in range(n))
    p = SheddingProblem(
        "big",
        ids,
        rng.uniform(1, 90, n),
        rng.uniform(0, 40, n),
        rng.uniform(0.5, 9, n),
        np.where(rng.random(n) < 0.3, 0.25, 0.0),
        rng.random(n) > 0.1,
        120.0,
    )
    for s in SOLVERS:
        res = assert_solver_conforms(s, p, seed=2, **FAMILY)
        assert res.feasible


def test_exact_decimal_fit_is_admitted():
    """0.1 + 0.1 + 0.1 + 0.1 = 0.4 only up to float rounding: every solver must still admit all."""
    p = SheddingProblem(
        "dec", ("a", "b", "c", "d"), np.full(4, 10.0), np.zeros(4), np.full(4, 0.1), np.zeros(4), np.ones(4, bool), 0.4
    )
    for s in SOLVERS:
        res = s.solve(p, seed=0, time_limit_s=5)
        np.testing.assert_array_equal(res.solution, [4, 4, 4, 4])


def test_anneal_sampler_is_configurable_by_import_path():
    with pytest.raises(ConfigError):
        AnnealingSheddingSolver(sampler="no.such.Sampler")
    with pytest.raises(ConfigError):
        AnnealingSheddingSolver(sampler="dimod.NoSuchSampler")
    s = AnnealingSheddingSolver(sampler="dimod.RandomSampler", num_reads=4)
    res = s.solve(make_problem(2, 6), seed=1, time_limit_s=1)
    assert res.feasible and res.info.params["sampler"] == "dimod.RandomSampler" and res.info.extra["reads"] == 4


# -- property: every portfolio best is feasible ----------------------------------------------

_shares = st.sampled_from([0.0, 0.0, 0.1, 0.25, 0.5, 0.8, 1.0])


@st.composite
def problems(draw):
    n = draw(st.integers(1, 6))
    fl = st.floats(0.0, 100.0, allow_nan=False)
    return SheddingProblem(
        "h",
        tuple(f"w{i}" for i in range(n)),
        np.array(draw(st.lists(fl, min_size=n, max_size=n))),
        np.array(draw(st.lists(fl, min_size=n, max_size=n))),
        # Demands are capacity units: 0 or at least 1e-6. Subnormal demands (e.g. 2.2e-308) make a
        # candidate infeasible through float underflow in the repair step (noted for a fix).
        np.array(draw(st.lists(st.one_of(st.just(0.0), st.floats(1e-6, 10.0)), min_size=n, max_size=n))),
        np.array(draw(st.lists(_shares, min_size=n, max_size=n))),
        np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n))),
        draw(st.floats(0.0, 40.0)),
        draw(st.integers(1, 4)),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems(), st.integers(0, 2**31 - 1))
def test_portfolio_best_is_always_feasible(p, seed):
    res = solve_portfolio(p, SOLVERS, seed=seed, time_limit_s=5.0, **FAMILY)
    assert_portfolio_consistent(res, p, **FAMILY)
    assert is_feasible_shedding(p, res.best.solution)
    assert all(c.feasible for c in res.candidates), [(c.info.solver, c.info.message) for c in res.candidates]


# -- CP-SAT stops on deterministic work, not on the clock ------------------------------------


def _hard_problem(n: int = 400) -> SheddingProblem:
    """Densities within 10% of each other: good answers come fast, the proof of optimality slowly."""
    rng = np.random.default_rng(0)
    d = rng.uniform(1, 10, n)
    return SheddingProblem(
        "hard",
        tuple(f"w{i:04d}" for i in range(n)),
        d * rng.uniform(0.9, 1.1, n),
        np.zeros(n),
        d,
        np.zeros(n),
        np.ones(n, bool),
        float(0.4 * d.sum()),
    )


def test_cpsat_is_repeatable_when_the_deterministic_limit_stops_it():
    p = _hard_problem()
    solver = CpSatSheddingSolver(deterministic_time=0.01)
    first, again = (solver.solve(p, seed=5, time_limit_s=5.0) for _ in range(2))
    assert first.info.status == "FEASIBLE" and first.info.extra["stopped_by"] == "deterministic"
    assert first.feasible and first.info.bound >= first.objective
    assert first.solution.tobytes() == again.solution.tobytes()
    assert (again.info.status, again.objective, again.info.bound) == (
        first.info.status,
        first.objective,
        first.info.bound,
    )
    assert first.info.extra["deterministic_time"] == again.info.extra["deterministic_time"]
    assert first.info.params["max_deterministic_time"] == 0.01
    assert first.info.params["max_time_in_seconds"] == 3 * 5.0  # the net stays at 3x the caller's budget
    full = CpSatSheddingSolver().solve(p, seed=5, time_limit_s=5.0)  # more work: the proof comes
    assert full.info.status == "OPTIMAL" and first.objective <= full.objective <= first.info.bound


@pytest.mark.parametrize(
    ("kw", "time_limit_s", "units", "wall_s"),
    [
        ({}, 2.0, UNITS_PER_S * 2.0, 3 * 2.0),
        ({"deterministic_time": 0.01}, 5.0, 0.01, 3 * 5.0),
        ({"deterministic_time": 10.0}, 5.0, 10.0, 3 * 10.0 / UNITS_PER_S),  # the net follows a larger budget
        ({"wall_time_factor": 5.0}, 2.0, UNITS_PER_S * 2.0, 5 * 2.0),
    ],
)
def test_cpsat_limits_are_derived_and_recorded(kw, time_limit_s, units, wall_s):
    res = CpSatSheddingSolver(**kw).solve(make_problem(3, 7), seed=1, time_limit_s=time_limit_s)
    assert res.info.params["max_deterministic_time"] == pytest.approx(units)
    assert res.info.params["max_time_in_seconds"] == pytest.approx(wall_s)
    assert res.info.status == "OPTIMAL" and res.info.extra["stopped_by"] is None


@pytest.mark.parametrize(
    "kw", [{"num_workers": 2}, {"deterministic_time": 0.0}, {"deterministic_time": -1.0}, {"wall_time_factor": 0.5}]
)
def test_cpsat_rejects_settings_that_break_repeatability(kw):
    with pytest.raises(ValueError):
        CpSatSheddingSolver(**kw)


@pytest.mark.parametrize("seed", range(6))
def test_reduced_cost_fixing_keeps_the_optimum(seed):
    """Fixing what the LP bound settles (and skipping presolve) must not change the proven optimum."""
    rng = np.random.default_rng(40 + seed)
    n = 120
    d = rng.uniform(1, 40, n)
    p = SheddingProblem(
        f"fix{seed}",
        tuple(f"w{i:03d}" for i in range(n)),
        rng.lognormal(5, 1.2, n),
        rng.uniform(0, 0.3, n) * (rng.random(n) < 0.2) * 100,
        d,
        np.where(rng.random(n) < 0.1, 0.25, 0.0),
        rng.random(n) < 0.95,
        float(d.sum() * rng.uniform(0.5, 0.9)),
    )
    fast = CpSatSheddingSolver().solve(p, seed=seed, time_limit_s=5.0)
    plain = CpSatSheddingSolver(fixing=False, presolve=True).solve(p, seed=seed, time_limit_s=5.0)
    assert fast.info.status == plain.info.status == "OPTIMAL"
    assert fast.feasible and fast.objective == pytest.approx(plain.objective, rel=1e-9)
    assert fast.info.bound >= plain.objective - 1e-9 * abs(plain.objective)
    assert fast.info.extra["fixed_by_reduced_cost"] > 0


def test_fixing_by_hand():
    """Three items, room 10: LP takes a (ratio 5) and b (ratio 2) whole, c (ratio 1) is the break item."""
    from policies.shedding.fixing import reduced_cost_fixing

    a, c, span = np.array([2, 4, 8]), np.array([10, 8, 8]), np.array([1, 1, 1])
    fixed, incumbent = reduced_cost_fixing(a, c, span, 10)
    # LP* = 10 + 8 + 4 = 22, lambda = 1; incumbent {a, b} = 18; rc_a = 8: 22 - 8 < 18 -> a fixed at 1;
    # rc_b = 4: 22 - 4 = 18 is not below 18 -> b stays free; c is the break item -> free.
    assert fixed.tolist() == [1, -1, -1] and incumbent.tolist() == [1, 1, 0]
