"""Correlated risk in the time-coupled problem: the term by hand, and every solver optimising the same one."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from policies.shedding.correlated import correlated_risk
from policies.shedding.horizon import (
    HorizonProblem,
    horizon_objective,
    horizon_problem_from_dict,
    horizon_problem_to_dict,
    is_feasible_horizon,
)
from policies.shedding.horizon_qubo import build_horizon_qubo
from policies.shedding.horizon_solvers import AnnealingHorizonSolver, CpSatHorizonSolver
from policies.shedding.problem import SheddingProblem

IDS = ("a", "b", "c")


def _base(key="down=x", risk=(0.0, 0.0, 0.0), L=1, capacity=30.0):
    value, demand = np.array([30.0, 24.0, 6.0]), np.array([10.0, 10.0, 10.0])
    return SheddingProblem(key, IDS, value, np.array(risk), demand, np.zeros(3), np.ones(3, bool), capacity, L)


def _problem(pair: float, L=1) -> HorizonProblem:
    # 10-minute steps (h = 1/6), S = (1, .5); free switches, so only the value and the pair term count
    c = np.zeros((3, 3))
    c[0, 1] = pair  # a and b: their dependencies fail together
    full = np.full(3, L)
    return HorizonProblem(_base(L=L), 600.0, np.array([1.0, 0.5]), full, [full], np.zeros(3), np.zeros(3), pair_cost=c)


def test_the_correlated_term_is_the_hand_sum() -> None:
    p, plain = _problem(pair=72.0), _problem(pair=0.0)
    keep_all = np.ones(6, dtype=np.int64)
    # value (30 + 24 + 6) / 6 * (1 + .5) = 15; the pair a, b: 72 / 6 * (1 + .5) = 18
    assert horizon_objective(plain, keep_all) == pytest.approx(15.0)
    assert horizon_objective(p, keep_all) == pytest.approx(15.0 - 18.0)
    assert horizon_objective(p, [1, 0, 1, 1, 0, 1]) == pytest.approx(36 / 6 * 1.5)  # b shed: no pair
    assert horizon_objective(p, [1, 1, 1, 1, 0, 1]) == pytest.approx(15.0 - 24 / 6 * 0.5 - 72 / 6)  # together at t=0
    back = horizon_problem_from_dict(horizon_problem_to_dict(p))
    assert back.pair_cost.tolist() == p.pair_cost.tolist()
    with pytest.raises(ValueError, match="upper-triangular"):
        HorizonProblem(
            p.base, 600.0, p.survival, p.prev, p.exit_levels, p.down_cost, p.up_cost, pair_cost=p.pair_cost.T
        )


def test_cpsat_and_the_qubo_optimise_the_same_objective() -> None:
    p = _problem(pair=40.0, L=2)  # 2 levels: bits of both workloads meet in the product
    q = build_horizon_qubo(p)
    n_bits = len(q.bits)
    best, best_x = -np.inf, None
    for bits in itertools.product((0, 1), repeat=n_bits):
        x = np.tile(p.lo, (p.steps, 1)).astype(np.int64)
        for (t, w, _), b in zip(q.bits, bits):
            x[t, w] += b
        ordered = all(not (b and not bits[i - 1]) for i, ((t, w, j), b) in enumerate(zip(q.bits, bits)) if j > 0)
        if ordered:  # thermometer code: energy == -objective exactly
            assert q.objective.energy(dict(enumerate(bits))) == pytest.approx(-horizon_objective(p, x.reshape(-1)))
        obj = horizon_objective(p, x.reshape(-1))
        if obj > best + 1e-9 and (x.reshape(p.steps, -1) @ (p.base.demand / 2) <= p.base.capacity + 1e-9).all():
            best, best_x = obj, x.reshape(-1)
    cp = CpSatHorizonSolver().solve(p, seed=1, time_limit_s=5.0)
    assert cp.info.status == "OPTIMAL" and cp.objective == pytest.approx(best)
    an = AnnealingHorizonSolver(num_reads=16, num_sweeps=200).solve(p, seed=1, time_limit_s=5.0)
    assert an.objective == pytest.approx(best)
    # the pair changes the optimum: without it a and b run whole; with it one of them is cut
    assert best_x.reshape(p.steps, -1)[:, :2].sum(axis=1).max() < 4
    plain = CpSatHorizonSolver().solve(_problem(pair=0.0, L=2), seed=1, time_limit_s=5.0)
    assert plain.solution.reshape(2, -1)[:, :2].tolist() == [[2, 2], [2, 2]]


def test_the_pair_cost_is_the_covariance_of_the_escalated_risks() -> None:
    state = _base()
    both = _base("down=x,y", risk=(10.0, 20.0, 0.0))  # y takes a and b's dependencies together
    only_c = _base("down=x,z", risk=(0.0, 0.0, 5.0))
    # q = (.5, .3, .2); g_a = (0, 10, 0), g_b = (0, 20, 0), g_c = (0, 0, 5)
    # Cov(a, b) = .3 * 200 - (3)(6) = 42; Cov(a, c) = 0 - 3 * 1 = -3 (never together: no pair)
    c = correlated_risk(state, [both, only_c], 0.5, [0.3, 0.2], aversion=1.0, scale=60.0).toarray()
    assert c[0, 1] == pytest.approx(42.0 / 60.0)
    assert c[0, 2] == 0.0 and c[1, 2] == 0.0 and np.all(np.tril(c) == 0)
    assert correlated_risk(state, [both, only_c], 0.5, [0.3, 0.2], aversion=0.0, scale=60.0) is None
    assert correlated_risk(state, [only_c], 0.5, [0.2], aversion=1.0, scale=60.0) is None  # one workload: no pair


def test_a_sparse_pair_cost_is_the_same_problem_as_the_dense_one() -> None:
    dense = _problem(pair=40.0, L=2)
    sparse = HorizonProblem(
        dense.base,
        dense.step_s,
        dense.survival,
        dense.prev,
        dense.exit_levels,
        dense.down_cost,
        dense.up_cost,
        pair_cost=sp.csr_array(dense.pair_cost),
    )
    assert [a.tolist() for a in sparse.pairs] == [a.tolist() for a in dense.pairs]
    for x in itertools.product(range(3), repeat=6):
        assert horizon_objective(sparse, x) == horizon_objective(dense, x)
    assert horizon_problem_to_dict(sparse) == horizon_problem_to_dict(dense)
    idx = np.array([0, 1])
    assert sparse.pair_block(idx).tolist() == dense.pair_block(idx).tolist() == [[0.0, 40.0], [0.0, 0.0]]
    with pytest.raises(ValueError, match="upper-triangular"):
        HorizonProblem(
            dense.base,
            600.0,
            dense.survival,
            dense.prev,
            dense.exit_levels,
            dense.down_cost,
            dense.up_cost,
            pair_cost=sp.csr_array(dense.pair_cost.T),
        )


def _dense_pairs_problem(rng) -> HorizonProblem:
    """Four workloads all paired with each other (as a large fleet's escalating states pair them),
    minimum shares and one that cannot run, so the products' bounds are not all 0..L."""
    n, L = 4, 2
    base = SheddingProblem(
        "down=x",
        ("a", "b", "c", "d"),
        rng.uniform(10, 60, n),
        rng.uniform(0, 10, n),
        rng.uniform(1, 3, n),
        np.array([0.5, 0.0, 0.0, 0.0]),
        np.array([True, True, True, False]),
        float(rng.uniform(4, 7)),
        L,
    )
    c = np.triu(rng.uniform(20, 80, (n, n)), 1)
    s = np.array([1.0, float(rng.uniform(0.3, 0.9))])
    prev = np.array([2, 1, 2, 0])
    return HorizonProblem(
        base, 900.0, s, prev, [prev], rng.uniform(0, 5, n), rng.uniform(0, 5, n), 1, None, 1, pair_cost=c
    )


def test_cpsat_proves_the_brute_force_optimum_with_every_workload_paired() -> None:
    # CP-SAT charges the pairs as one product per workload (k_w times its partners' weighted levels);
    # the optimum must still be the pairwise objective's, found by enumerating every trajectory.
    rng = np.random.default_rng(11)
    for _ in range(3):
        p = _dense_pairs_problem(rng)
        assert p.pairs[0].size == 6
        points = (np.array(x) for x in itertools.product(range(3), repeat=8))
        opt = max(horizon_objective(p, x) for x in points if is_feasible_horizon(p, x))
        res = CpSatHorizonSolver().solve(p, seed=2, time_limit_s=2.0)
        assert res.info.status == "OPTIMAL" and res.feasible
        assert res.objective == pytest.approx(opt, abs=1e-7)
        assert opt - 1e-7 <= res.info.bound <= opt + 2 * res.info.extra["rounding_eps"] + 1e-9  # proven
        plain = dataclasses.replace(p, pair_cost=None)  # the pairs matter here: ignoring them is worse
        ignored = CpSatHorizonSolver().solve(plain, seed=2, time_limit_s=2.0).solution
        assert horizon_objective(p, ignored) < opt - 1e-6
