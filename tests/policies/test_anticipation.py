"""From the failure model to time-coupled problems: remaining-duration survival, escalation, the timed plan."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from policies.model.failure_model import FailureModel
from policies.model.states import DEGRADED, DOWN, UP
from policies.scenarios.scenario_set import Scenario
from policies.shedding.anticipation import HorizonParams, build_horizon_problems, remaining_survival, timed_plan
from policies.shedding.horizon import HorizonProblem
from policies.shedding.problem import SheddingProblem
from policies.switching import DEFAULT_SWITCH_COST_S


def test_survival_is_the_empirical_remaining_duration_after_the_delay() -> None:
    d = np.array([5.0, 10.0, 20.0, 40.0])
    # q90 of (5, 10, 20, 40) = 34 min -> 4 steps of ceil(8.5) = 9 min; S_t = share longer than t
    s, step_s = remaining_survival(d, 99.0, 0.0, 4, 60.0, 3)
    assert step_s == 540.0 and s.tolist() == [1.0, 0.75, 0.5, 0.25]
    # observed 5 min late: remaining (5, 15, 35), q90 = 31 -> 8-minute steps
    s, step_s = remaining_survival(d, 99.0, 5.0, 4, 60.0, 3)
    assert step_s == 480.0 and s == pytest.approx([1.0, 2 / 3, 1 / 3, 1 / 3])
    # too few episodes: exponential with the scenario's mean (10 min), q90 = 10 ln 10
    s, step_s = remaining_survival(d[:2], 10.0, 0.0, 4, 60.0, 3)
    assert step_s == 360.0 and s == pytest.approx(np.exp(-np.arange(4) * 6 / 10))


def _model() -> FailureModel:
    # db: degraded 3 times (2 minutes each); twice it went down right after (4 minutes), once it recovered
    col = [UP] * 3 + [DEGRADED] * 2 + [DOWN] * 4 + [UP] * 3 + [DEGRADED] * 2 + [DOWN] * 4 + [UP] * 3
    col += [DEGRADED] * 2 + [UP] * 3
    states = np.array(col, dtype=np.int8)[:, None]
    states.flags.writeable = False
    t0 = pd.Timestamp(0, unit="ms", tz="UTC")
    return FailureModel(1, t0, t0, ("db",), states, pd.DataFrame(), pd.DataFrame(), {"hysteresis_windows": 2})


def _scenario(key, down=(), degraded=()) -> Scenario:
    return Scenario(key, tuple(down), tuple(degraded), tuple(down), 0.1, 3.0, "empirical")


def _problem(key: str, capacity: float) -> SheddingProblem:
    ids = ("a", "b")
    return SheddingProblem(
        key, ids, np.array([100.0, 50.0]), np.zeros(2), np.ones(2), np.zeros(2), np.ones(2, bool), capacity, 2
    )


def test_a_precursor_hands_over_to_its_down_plan_in_the_share_the_history_shows() -> None:
    scen = [
        _scenario("normal"),
        _scenario("degraded=db", degraded=["db"]),
        _scenario("down=db", down=["db"]),
        _scenario("fallback:all-down", down=["db"]),
    ]
    problems = [_problem(s.key, c) for s, c in zip(scen, (2.0, 1.5, 1.0, 0.0))]
    static = {"normal": np.array([2, 2]), "degraded=db": np.array([2, 1]), "down=db": np.array([2, 0])}
    workloads = pa.table(
        {"workload_id": ["b", "a"], "value_per_hour": [50.0, 100.0], "tier": [3, 0], "switch_cost_s": [60.0, None]}
    )
    hp = build_horizon_problems(_model(), scen, problems, static, workloads, HorizonParams(steps=3, hold_s=120.0))
    assert [p.key for p in hp] == ["degraded=db", "down=db"]  # normal and the fallback have nothing to wait for
    pre, down = hp
    assert pre.exit_levels.tolist() == [[2, 2], [2, 0]]
    assert pre.exit_share[1] == pytest.approx((2 + 0.5) / (3 + 1))  # 2 of 3 degraded episodes went down
    assert down.exit_levels.tolist() == [[2, 2]] and down.exit_share.tolist() == [1.0]
    assert pre.prev.tolist() == [2, 2] and pre.max_changes == 1
    assert pre.dwell == math.ceil(120.0 / pre.step_s)
    # per-workload switching costs by id (the table is in another order): a default, b 60 s; up adds warm-up
    assert pre.down_cost.tolist() == pytest.approx([100 / 2 * DEFAULT_SWITCH_COST_S / 3600, 50 / 2 * 60 / 3600])
    assert pre.up_cost.tolist() == pytest.approx([100 / 2 * (DEFAULT_SWITCH_COST_S + 240) / 3600, 50 / 2 * 120 / 3600])


def test_the_timed_plan_is_the_final_level_and_the_first_change() -> None:
    base = _problem("s", 2.0)
    p = HorizonProblem(base, 300.0, np.array([1.0, 0.5, 0.4]), [2, 2], [[2, 2]], [1, 1], [1, 1], 1, None, 1)
    plan = timed_plan(p, np.array([2, 2, 2, 1, 2, 1]), hold_s=600.0)
    assert plan.levels.tolist() == [2, 1] and plan.act_after_s.tolist() == [0.0, 300.0] and plan.hold_s == 600.0


def test_timed_decisions_ship_the_plan_and_repeat_byte_for_byte() -> None:
    from policies.shedding.anticipation import plan_over_time
    from policies.shedding.export import decisions_table, policy_document
    from policies.shedding.horizon_solvers import HORIZON
    from policies.shedding.policy import SHEDDING, build_shedding_problems
    from qres_client.bundle import encode_json, encode_parquet
    from qres_client.schema import DECISIONS_SHEDDING_ADMISSION
    from tests.policies.shedding_cases import SCENARIOS, shedding_tables

    tables = shedding_tables()
    states = np.zeros((60, 1), dtype=np.int8)  # never an episode: exponential durations (30 min each)
    t0 = pd.Timestamp(0, unit="ms", tz="UTC")
    model = FailureModel(1, t0, t0, ("pay",), states, pd.DataFrame(), pd.DataFrame(), {"hysteresis_windows": 2})
    params = HorizonParams(steps=4, hold_s=300.0)
    outs = []
    for _ in range(2):
        problems = build_shedding_problems(*tables, SCENARIOS)
        results = SHEDDING.solve_each(problems, seed=3, time_limit_s=2.0, solvers=("greedy", "cpsat"))

        def solve(hp):
            return HORIZON.solve_each(hp, seed=3, time_limit_s=2.0, solvers=("greedy", "cpsat"))

        timing, hp, hr = plan_over_time(model, SCENARIOS, problems, results, tables[2], params, solve)
        table = decisions_table(SCENARIOS, results, problems, timing, params.hold_s)
        doc = policy_document(SCENARIOS, results, problems, timing)
        outs.append((encode_parquet(table), encode_json(doc)))
    assert outs[0] == outs[1]
    assert table.schema.equals(DECISIONS_SHEDDING_ADMISSION) and set(table.column("hold_s").to_pylist()) == {300.0}
    assert hp and set(timing) == {p.key for p in hp} and "normal" not in timing
    by_key = {s["key"]: s for s in doc["scenarios"]}
    for p, r in zip(hp, hr):
        plan = by_key[p.key]["timed"]
        assert plan["objective"] >= plan["live_objective"] - 1e-6  # the live rule is a candidate
        rows = [x for x in table.to_pylist() if x["scenario_key"] == p.key]
        admit = {x["workload_id"]: x["admit"] for x in rows}
        assert admit == {a["workload_id"]: a["admit"] for a in plan["actions"]}
        caps = {x["workload_id"]: x["admit_max"] for x in rows}
        assert caps == {a["workload_id"]: a["admit_max"] for a in plan["actions"]}
        assert all(caps[w] >= admit[w] for w in admit)  # a cap never cuts below the plan
        k = np.asarray(r.best.solution).reshape(p.steps, -1)[-1]
        assert [admit[w] for w in p.base.workload_ids] == (k / p.base.levels).tolist()
    assert "timed" not in by_key["normal"]
