"""The horizon plan over the workloads a state can change: equal to the full plan where the condition holds."""

from __future__ import annotations

import dataclasses

import numpy as np

from policies.shedding.horizon import HorizonProblem, horizon_objective, is_feasible_horizon
from policies.shedding.horizon_restrict import expand, full_solution, is_exact, own_values, restrict
from policies.shedding.horizon_solvers import CpSatHorizonSolver
from policies.shedding.problem import SheddingProblem, fill_levels

CPSAT = CpSatHorizonSolver(deterministic_time=20.0)


def _random_problem(rng: np.random.Generator, i: int) -> tuple[HorizonProblem, np.ndarray]:
    """A small state: a few workloads, some blocked or at risk, capacity sometimes tight; and its static levels."""
    n, steps, L = int(rng.integers(3, 7)), int(rng.integers(2, 4)), int(rng.integers(1, 4))
    demand = rng.choice([0.0, 1.0, 2.0, 3.0], size=n, p=[0.15, 0.35, 0.3, 0.2])
    value = rng.uniform(1.0, 10.0, size=n)
    risk = np.where(rng.random(n) < 0.3, rng.uniform(0.0, 14.0, size=n), 0.0)
    base = SheddingProblem(
        scenario_key=f"s{i}",
        workload_ids=tuple(f"w{j}" for j in range(n)),
        value_per_hour=value,
        risk_per_hour=risk,
        demand=demand,
        min_share=np.where(rng.random(n) < 0.3, rng.choice([0.25, 0.5], size=n), 0.0),
        runnable=rng.random(n) > 0.2,
        capacity=float(demand.sum() * rng.choice([0.4, 0.7, 1.0, 1.5])),
        levels=L,
    )
    static = fill_levels(base, base.bounds.lo.copy())
    prev = np.where(rng.random(n) < 0.6, static, rng.integers(0, L + 1, size=n))  # normal's levels
    exits = [prev] if rng.random() < 0.6 else [prev, np.where(rng.random(n) < 0.7, prev, static)]
    shares = np.ones(1) if len(exits) == 1 else np.array([0.7, 0.3])
    s = np.minimum.accumulate(np.sort(rng.uniform(0.2, 1.0, size=steps))[::-1])
    s[0] = 1.0
    p = HorizonProblem(
        base=base,
        step_s=float(rng.choice([60.0, 300.0])),
        survival=s,
        prev=prev,
        exit_levels=np.vstack(exits),
        down_cost=rng.uniform(0.0, 2.0, size=n),
        up_cost=rng.uniform(0.0, 3.0, size=n),
        dwell=int(rng.integers(1, 3)),
        exit_share=shares,
        max_changes=1,
    )
    return p, static


def _optimum(p: HorizonProblem) -> tuple[np.ndarray, float]:
    r = CPSAT.solve(p, seed=1, time_limit_s=2.0)
    assert r.info.status == "OPTIMAL"
    return np.asarray(r.solution), horizon_objective(p, r.solution)


def test_the_restricted_plan_equals_the_full_one_where_the_condition_holds() -> None:
    rng = np.random.default_rng(20)
    exact = smaller = worse = 0
    for i in range(120):
        p, static = _random_problem(rng, i)
        r = restrict(p, static)
        x_full, best = _optimum(p)
        x_sub, _ = _optimum(r.problem)
        x = expand(r, x_sub)
        got = horizon_objective(p, x)
        tol = 1e-6 * (1.0 + abs(best))
        assert is_feasible_horizon(p, x), i  # always a plan of the whole state
        assert got <= best + tol, i
        smaller += len(r.problem.base.workload_ids) < len(p.base.workload_ids)
        if is_exact(r, x_sub):
            exact += 1
            assert abs(got - best) <= tol, (i, got, best)
        else:
            worse += got < best - tol
        # the plan handed on is never worse than the live rule on the whole state
        _, _, value, live = full_solution(r, x_sub, "cpsat")
        assert value >= max(got, live) - tol
    # the condition is neither vacuous nor always true on these draws, and it matters where it fails
    assert smaller >= 60 and 40 <= exact < 120 and worse >= 1, (smaller, exact, worse)


def test_held_workloads_are_at_their_own_best_and_free_ones_are_the_changeable() -> None:
    rng = np.random.default_rng(7)
    for i in range(40):
        p, static = _random_problem(rng, i)
        r = restrict(p, static)
        stay, best = own_values(p)
        held = r.held
        assert np.all(np.isfinite(stay[held])) and np.all(stay[held] >= best[held] - 1e-9 * (1 + abs(best[held])))
        assert np.all(static[held] == p.prev[held]) and np.all(p.exit_levels[:, held] == p.prev[held])
        # each own best is a real one-change trajectory's value: brute force over (level, step)
        for w in range(len(p.prev)):
            values = []
            for level in range(p.base.levels + 1):
                for s in range(p.steps):
                    k = np.tile(p.prev, (p.steps, 1))
                    k[s:, w] = level
                    if p.lo[w] <= level <= p.hi[w] and (s == 0 or p.lo[w] <= p.prev[w] <= p.hi[w]):
                        values.append(_one(p, k, w))
            if p.lo[w] <= p.prev[w] <= p.hi[w]:
                values.append(_one(p, np.tile(p.prev, (p.steps, 1)), w))
            assert np.isclose(max(values), best[w], rtol=1e-9, atol=1e-9), (i, w)


def _one(p: HorizonProblem, k: np.ndarray, w: int) -> float:
    """Workload w's own value on ``k`` (only w differs from ``prev``): the objective is a sum over workloads."""
    others = np.tile(p.prev, (p.steps, 1))
    return horizon_objective(p, k.reshape(-1)) - horizon_objective(p, others.reshape(-1)) + _stay(p, w)


def _stay(p: HorizonProblem, w: int) -> float:
    value = float(np.sum(p.value_per_level[:, w])) * p.prev[w]
    exits = sum(
        q * float(p.leave @ np.full(p.steps, _sw(p, w, p.prev[w], e[w]))) for q, e in zip(p.exit_share, p.exit_levels)
    )
    return value - exits


def _sw(p: HorizonProblem, w: int, a: int, b: int) -> float:
    return max(b - a, 0) * p.up_cost[w] + max(a - b, 0) * p.down_cost[w]


def test_correlated_pairs_keep_both_workloads_free_and_the_condition_holds() -> None:
    rng = np.random.default_rng(11)
    checked = 0
    for i in range(40):
        p, static = _random_problem(rng, i)
        n = len(p.prev)
        c = np.zeros((n, n))
        c[0, n - 1] = rng.uniform(0.5, 5.0)
        p = dataclasses.replace(p, pair_cost=c)
        r = restrict(p, static)
        assert {0, n - 1} <= set(r.free.tolist())
        x_sub, _ = _optimum(r.problem)
        _, best = _optimum(p)
        got = horizon_objective(p, expand(r, x_sub))
        assert got <= best + 1e-6 * (1.0 + abs(best))
        if is_exact(r, x_sub):
            checked += 1
            assert abs(got - best) <= 1e-6 * (1.0 + abs(best)), i
    assert checked >= 10
