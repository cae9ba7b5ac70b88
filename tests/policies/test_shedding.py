"""The shedding front door: the builder from tables, the portfolio run, the public API."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import policies.shedding.policy as shedding_mod
from policies.errors import ConfigError
from policies.shedding.export import policy_document
from policies.shedding.policy import SHEDDING, build_shedding_problems
from policies.solve.anneal import AnnealParams
from tests.policies.shedding_cases import SCENARIOS, shedding_tables


def test_builder_by_hand():
    probs = build_shedding_problems(*shedding_tables(), SCENARIOS)
    assert [p.key for p in probs] == [s.key for s in SCENARIOS]
    assert all(p.workload_ids == ("w1", "w2", "w3", "w4") for p in probs)
    normal, pay, r2, deg = probs
    np.testing.assert_array_equal(normal.demand, [30.0, 40.0, 20.0, 10.0])
    np.testing.assert_array_equal(normal.min_share, [0.5, 0.25, 0.0, 0.0])
    np.testing.assert_array_equal(normal.value_per_hour, [100.0, 60.0, 20.0, 40.0])
    assert [p.capacity for p in probs] == [150.0, 150.0, 100.0, 100.0]  # r1 degraded: 50 + 0.5 * 100
    np.testing.assert_array_equal(normal.runnable, [True, True, True, True])
    np.testing.assert_array_equal(pay.runnable, [False, False, True, True])  # svc-a down; w2 requires pay
    np.testing.assert_array_equal(r2.runnable, [True, True, True, False])  # svc-c and r2 down
    np.testing.assert_array_equal(deg.runnable, [True, True, True, True])
    np.testing.assert_array_equal(normal.risk_per_hour, [0, 0, 0, 0])
    np.testing.assert_array_equal(pay.risk_per_hour, [0, 0, 10.0, 4.0])
    np.testing.assert_array_equal(deg.risk_per_hour, [0, 0, 5.0, 0.5 * 4.0 + 0.5 * 6.0])
    custom = build_shedding_problems(
        *shedding_tables(), SCENARIOS[3:], levels=2, degraded_capacity_share=0.0, degraded_risk_share=1.0
    )[0]
    assert custom.capacity == 50.0 and custom.levels == 2
    np.testing.assert_array_equal(custom.risk_per_hour, [0, 0, 10.0, 10.0])


def test_builder_rejects_duplicates_and_bad_shares():
    services, deps, wl = shedding_tables()
    with pytest.raises(ValueError, match="workload_id"):
        build_shedding_problems(services, deps, pa.concat_tables([wl, wl]), SCENARIOS)
    with pytest.raises(ValueError, match="degraded_risk_share"):
        build_shedding_problems(services, deps, wl, SCENARIOS, degraded_risk_share=1.5)


def test_solve_shedding_seeds_follow_keys_and_unknown_solvers_fail():
    probs = build_shedding_problems(*shedding_tables(), SCENARIOS)
    full = SHEDDING.solve_each(probs, seed=9, time_limit_s=5.0)
    part = SHEDDING.solve_each(probs[2:], seed=9, time_limit_s=5.0)  # an incident re-run of a subset
    for a, b in zip(full[2:], part):
        assert [c.info.seed for c in a.candidates] == [c.info.seed for c in b.candidates]
        np.testing.assert_array_equal(a.best.solution, b.best.solution)
    with pytest.raises(ConfigError, match="unknown shedding solver"):
        SHEDDING.solve_each(probs, seed=1, time_limit_s=1.0, solvers=("greedy", "magic"))
    only = SHEDDING.solve_each(probs, seed=1, time_limit_s=1.0, solvers=("anneal",), anneal=AnnealParams(num_reads=2))
    assert all(r.chosen == "anneal" and r.candidates[0].info.params["num_reads"] == 2 for r in only)


def test_public_api_is_declared():
    for name in shedding_mod.__all__:
        assert hasattr(shedding_mod, name)
    # tasks/solve.py imports these from the front door, wherever they are defined
    callers_need = {"build_shedding_problems", "SHEDDING", "shedding_files", "decisions_table", "policy_document"}
    assert callers_need <= set(shedding_mod.__all__)
    assert shedding_mod.policy_document is policy_document
