"""The time-coupled shedding problem: hand-worked optima with switching and dwell, the QUBO's energy."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from policies.shedding.horizon import (
    HorizonProblem,
    change_steps,
    horizon_objective,
    horizon_problem_from_dict,
    horizon_problem_to_dict,
    is_feasible_horizon,
)
from policies.shedding.horizon_qubo import build_horizon_qubo
from policies.shedding.horizon_solvers import AnnealingHorizonSolver, CpSatHorizonSolver, GreedyHorizonSolver
from policies.shedding.problem import SheddingProblem
from policies.switching import DEFAULT_SWITCH_COST_S, SwitchCosts, switch_costs

EXAMPLE = Path(__file__).resolve().parents[2] / "data" / "examples" / "horizon.json"


def _one_workload(survival, *, dwell: int = 1) -> HorizonProblem:
    # value 0, risk 36/h: keeping the workload costs 6 per 10-minute step while the state lasts
    base = SheddingProblem(
        "s", ("w",), np.zeros(1), np.array([36.0]), np.ones(1), np.zeros(1), np.ones(1, bool), 1.0, 1
    )
    return HorizonProblem(base, 600.0, np.array(survival), [1], [[1]], [4.0], [6.0], dwell)


def test_waiting_pays_when_the_state_is_likely_to_end_soon() -> None:
    # S = (1, .25, .25), E = (.75, 0, .25). Hand-worked, per plan of levels over the 3 steps:
    #   (1,1,1) never switch: -6 (1 + .25 + .25) = -9
    #   (0,0,0) switch now:   -4 (shed, S0) - 6 * 1 (re-admit at the end, E summed) = -10
    #   (1,0,0) wait a step:  -6 - .25 * 4 - .25 * 6 = -8.5   <- optimum
    #   (1,1,0):              -7.5 - .25 * 4 - .25 * 6 = -10
    p = _one_workload([1.0, 0.25, 0.25])
    assert horizon_objective(p, [1, 1, 1]) == pytest.approx(-9.0)
    assert horizon_objective(p, [0, 0, 0]) == pytest.approx(-10.0)
    res = CpSatHorizonSolver().solve(p, seed=1, time_limit_s=1.0)
    assert res.solution.tolist() == [1, 0, 0] and res.objective == pytest.approx(-8.5)
    assert res.info.status == "OPTIMAL" and res.info.bound >= res.objective - 1e-9
    greedy = GreedyHorizonSolver().solve(p, seed=1, time_limit_s=1.0)  # the live rule sheds on sight
    assert greedy.solution.tolist() == [0, 0, 0] and greedy.objective == pytest.approx(-10.0)


def test_dwell_forbids_a_second_change_too_soon() -> None:
    p = _one_workload([1.0, 0.5, 0.5], dwell=2)
    assert is_feasible_horizon(p, np.array([1, 0, 0]))
    assert not is_feasible_horizon(p, np.array([0, 1, 1]))  # changes at steps 0 and 1
    assert is_feasible_horizon(_one_workload([1.0, 0.5, 0.5]), np.array([0, 1, 1]))
    assert [c.tolist() for c in change_steps(p, np.array([0, 0, 1]))] == [[0, 2]]


def _random_problem(rng, dwell: int) -> HorizonProblem:
    n, L, T = 2, 2, 3
    base = SheddingProblem(
        "r",
        ("a", "b"),
        rng.uniform(0, 60, n),
        rng.uniform(0, 60, n),
        rng.uniform(1, 3, n),
        np.array([0.0, 0.5]),
        np.ones(n, bool),
        float(rng.uniform(2, 4)),
        L,
    )
    s = np.sort(rng.uniform(0.05, 1, T))[::-1]
    s[0] = 1.0
    exits = rng.integers(0, L + 1, (2, n))
    q = rng.uniform(0.2, 0.8)
    return HorizonProblem(
        base, 900.0, s, rng.integers(0, L + 1, n), exits, rng.uniform(0, 8, n), rng.uniform(0, 8, n), dwell, [q, 1 - q]
    )


def _brute(p: HorizonProblem):
    best = None
    for x in itertools.product(range(p.base.levels + 1), repeat=p.steps * 2):
        x = np.array(x)
        if is_feasible_horizon(p, x) and (best is None or horizon_objective(p, x) > best[0] + 1e-12):
            best = (horizon_objective(p, x), x)
    return best


def test_cpsat_reaches_the_brute_force_optimum_with_dwell_and_one_change() -> None:
    rng = np.random.default_rng(5)
    for _ in range(8):
        p2 = _random_problem(rng, 2)
        p1 = HorizonProblem(
            p2.base, p2.step_s, p2.survival, p2.prev, p2.exit_levels, p2.down_cost, p2.up_cost, 1, p2.exit_share
        )
        p3 = HorizonProblem(
            p2.base, p2.step_s, p2.survival, p2.prev, p2.exit_levels, p2.down_cost, p2.up_cost, 1, p2.exit_share, 1
        )
        for p in (p1, p2, p3):
            opt, _ = _brute(p)
            res = CpSatHorizonSolver().solve(p, seed=3, time_limit_s=2.0)
            assert res.feasible and res.objective == pytest.approx(opt, abs=1e-7)
            assert res.info.bound >= opt - 1e-7
            ann = AnnealingHorizonSolver(num_reads=4, num_sweeps=100).solve(p, seed=3, time_limit_s=1.0)
            assert ann.feasible and ann.objective <= opt + 1e-7


def test_qubo_energy_is_minus_the_objective_on_every_ordered_point() -> None:
    rng = np.random.default_rng(11)
    p = horizon_problem_from_dict(json.loads(EXAMPLE.read_text()))
    q = build_horizon_qubo(p)
    n = len(p.base.workload_ids)
    for _ in range(50):
        x = rng.integers(p.lo, p.hi + 1, (p.steps, n)).reshape(-1)
        bits = {i: int(j < x[t * n + w] - p.lo[w]) for i, (t, w, j) in enumerate(q.bits)}
        assert q.objective.energy(bits) == pytest.approx(-horizon_objective(p, x), rel=1e-9, abs=1e-6)
        penalties = q.bqm.energy(bits) - q.objective.energy(bits)  # ordered bits: only the capacity's
        room = np.array([float(x[t * n : (t + 1) * n] @ q.weight - p.lo @ q.weight) for t in range(p.steps)])
        assert np.isfinite(penalties) and (penalties != 0) == bool(np.any(room))  # unbalanced: no slack bits
    assert not any(str(v).startswith("slack") for v in q.bqm.variables)


def test_example_round_trips_and_solvers_are_deterministic() -> None:
    p = horizon_problem_from_dict(json.loads(EXAMPLE.read_text()))
    again = horizon_problem_from_dict(json.loads(json.dumps(horizon_problem_to_dict(p))))
    assert json.dumps(horizon_problem_to_dict(again)) == json.dumps(horizon_problem_to_dict(p))
    for solver in (CpSatHorizonSolver(), AnnealingHorizonSolver(num_reads=4, num_sweeps=100)):
        a, b = (solver.solve(p, seed=9, time_limit_s=1.0) for _ in range(2))
        assert a.solution.tolist() == b.solution.tolist()
    cp = CpSatHorizonSolver().solve(p, seed=9, time_limit_s=1.0)
    greedy = GreedyHorizonSolver().solve(p, seed=9, time_limit_s=1.0)
    assert cp.objective > greedy.objective  # switching costs make the live rule's plan beatable here


def test_per_level_costs_are_the_backtest_charge_of_a_one_level_change() -> None:
    wl = pa.table(
        {"workload_id": ["b", "a"], "value_per_hour": [3600.0, 7200.0], "tier": [3, 0], "warmup_s": [None, 0.0]}
    )
    costs = switch_costs(wl, levels=4)
    assert costs.workload_ids == ("a", "b") and costs.switch_cost_s.tolist() == [DEFAULT_SWITCH_COST_S] * 2
    assert costs.warmup_s.tolist() == [0.0, 60.0]  # a given; b the tier default 60 * (4 - 3)
    down, up = costs.per_level()
    for w in range(2):
        one = np.zeros(2, dtype=np.int64)
        one[w] = 1
        assert down[w] == pytest.approx(costs.charge(one, np.zeros(2)))
        assert up[w] == pytest.approx(costs.charge(np.zeros(2), one))
    assert isinstance(costs, SwitchCosts) and up.tolist() == pytest.approx([15.0, 22.5])  # 7200/4/3600*30; 900*90/3600
