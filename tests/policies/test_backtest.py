"""Backtest: hand-checkable replay cases, CVaR on known losses, a real run on a small sample."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from policies.backtest.costs import SwitchCosts
from policies.backtest.metrics import kl_divergence
from policies.backtest.oracle import hindsight_oracle
from policies.backtest.overlay import map_sites
from policies.backtest.policies import PriorityPolicy, state_optimum
from policies.backtest.replay import StateCatalog, find_incidents, realize_levels, replay_incident
from policies.model.states import DOWN, UP
from policies.shedding.problem import SheddingProblem


def _problem(capacity: float, value=(10.0, 6.0, 1.0), demand=(4.0, 4.0, 4.0), min_share=(0.0, 0.0, 0.0)):
    n = len(value)
    return SheddingProblem(
        "s",
        tuple(f"w{i}" for i in range(n)),
        np.array(value),
        np.zeros(n),
        np.array(demand),
        np.array(min_share),
        np.ones(n, dtype=bool),
        capacity,
        levels=4,
    )


def test_kl_is_zero_for_the_same_mix_and_positive_otherwise() -> None:
    assert kl_divergence([1, 2, 3], [2, 4, 6]) == pytest.approx(0.0, abs=1e-12)
    assert kl_divergence([1, 0, 0], [1, 1, 1]) == pytest.approx(np.log(3), rel=1e-3)


def test_fcfs_on_a_hand_made_capacity_drop() -> None:
    # Capacity 6 of 12: arrivals w2, w0, w1. w2 takes all 4 units, w0 gets 2 (half), w1 nothing.
    p = _problem(6.0)
    k = realize_levels(p, np.array([4, 4, 4]), [2, 0, 1])
    assert k.tolist() == [2, 0, 4]
    # Within capacity, intentions are kept as they are.
    assert realize_levels(_problem(12.0), np.array([4, 1, 0]), [0, 1, 2]).tolist() == [4, 1, 0]


def test_unrunnable_work_gives_nothing_and_takes_no_capacity() -> None:
    p = SheddingProblem(
        "s",
        ("a", "b"),
        np.array([5.0, 5.0]),
        np.zeros(2),
        np.array([4.0, 4.0]),
        np.zeros(2),
        np.array([False, True]),
        4.0,
        levels=4,
    )
    assert realize_levels(p, np.array([4, 4]), [0, 1]).tolist() == [0, 4]


def test_the_oracle_cannot_be_beaten_without_breaking_minimums() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = 5
        p = _problem(float(rng.uniform(2, 20)), rng.uniform(1, 10, n), rng.uniform(1, 6, n), np.zeros(n))
        k_best = state_optimum(_view(p), time_limit_s=1.0).levels
        best = float(k_best @ p.net) / 4
        for _ in range(10):  # any intention in any order, realized by the world
            k = realize_levels(p, rng.integers(0, 5, n), rng.permutation(n))
            assert float(k @ p.net) / 4 <= best + 1e-9


def _view(p):
    from policies.backtest.replay import View

    return View(p.key, frozenset(), frozenset(), p)


def test_find_incidents_merges_close_outages_and_skips_the_past() -> None:
    s = np.full((40, 2), UP, dtype=np.int8)
    s[2:5, 0] = DOWN  # before the split at 10: ignored
    s[12:14, 1] = DOWN
    s[16:18, 0] = DOWN  # gap of 2 windows: merged with the one before
    s[30:31, 1] = DOWN  # a separate incident
    inc = find_incidents(s, ("a", "b"), first_window=10, merge_gap_windows=3, pad_windows=1)
    assert [(i.start_window, i.end_window, i.outage_windows, i.services) for i in inc] == [
        (12, 19, 4, ("a", "b")),
        (30, 32, 1, ("b",)),
    ]


def _tables():
    services = pa.table({"service_id": ["region-a", "saas-x"], "kind": ["region", "saas"], "capacity": [10.0, 0.0]})
    deps = pa.table(
        {
            "service_id": pa.array([], pa.string()),
            "depends_on": pa.array([], pa.string()),
            "hard": pa.array([], pa.bool_()),
        }
    )
    risk_type = pa.list_(pa.struct([("depends_on", pa.string()), ("cost_per_hour", pa.float64())]))
    workloads = pa.table(
        {
            "workload_id": ["cheap", "precious"],
            "service_id": ["region-a", "region-a"],
            "value_per_hour": [1.0, 100.0],
            "demand": [5.0, 5.0],
            "min_share": [0.0, 0.0],
            "tier": [0, 1],
            "requires": pa.array([["region-a"], ["region-a", "saas-x"]], pa.list_(pa.string())),
            "risks": pa.array([[], []], risk_type),
        }
    )
    return {"services": services, "dependencies": deps, "workloads": workloads}


def test_replay_tiers_versus_oracle_on_a_region_half_down() -> None:
    # The region is degraded (half its capacity, 5 units): static tiers serve tier 0 "cheap"
    # first and keep 1/h; the oracle keeps "precious" (100/h).
    from policies.model.states import DEGRADED

    tables = _tables()
    catalog = StateCatalog(tables, ("region-a", "saas-x"))
    truth = catalog.views_of(np.array([[DEGRADED, UP]] * 3, dtype=np.int8))
    normal = catalog.views_of(np.array([[UP, UP]], dtype=np.int8))[0]
    free = SwitchCosts(("cheap", "precious"), np.array([1.0, 100.0]), np.zeros(2), np.zeros(2), 4)
    tiers = PriorityPolicy("tiers", lambda wid, _: ({"cheap": 0, "precious": 1}[wid], wid))
    run = replay_incident(tiers, truth, truth, normal, free)
    oracle = hindsight_oracle(truth, normal, [state_optimum(v) for v in truth], [run.normal], free, 1.0)
    assert run.values.tolist() == [1.0] * 3
    assert oracle.values.tolist() == [100.0] * 3


def test_sites_that_fail_most_take_the_regions_first() -> None:
    checks = pa.table({"service_id": ["calm", "wild", "wild", "mid"], "status": ["up", "down", "down", "down"]})
    overlay = {
        "services": pa.table({"service_id": ["region-b", "region-a", "saas"], "kind": ["region", "region", "saas"]}),
        "dependencies": pa.table({"service_id": ["x"], "depends_on": ["saas"], "hard": [True]}),
    }
    assert map_sites(checks, overlay) == {"wild": "region-a", "mid": "region-b", "calm": "saas"}


@pytest.mark.e2e
def test_backtest_on_the_small_sample_is_deterministic_and_bounded(small_sample) -> None:
    from policies.backtest.run import BacktestConfig, run_backtest
    from policies.telemetry.ingest import conform_tables, load_telemetry

    tables = conform_tables(load_telemetry(str(small_sample)).tables)
    cfg = BacktestConfig(
        train_fraction=0.5, solvers=("greedy", "cpsat"), time_limit_s=1.0, sample_max=0, refuse_empty=False
    )
    a, b = run_backtest(tables, cfg), run_backtest(tables, cfg)
    a.pop("train"), b.pop("train")
    assert a == b
    if a["n_incidents"] == 0:  # an empty question is named, never scored
        assert a["refused"] and a["overall"] == {}
    else:
        assert a["refused"] is None
        names = {"published", "fcfs", "tiers", "greedy", "greedy_dwell", "greedy_admission", "oracle"}
        with_standby = {"published_no_standby", "greedy_standby"} if a["standby"] else set()
        assert set(a["overall"]) == names | with_standby
    for inc in a["incidents"]:
        assert inc["policies"]["oracle"]["share"] in (None, 1.0)
        for name, f in inc["policies"].items():  # nobody beats the hindsight oracle
            assert f["avoidable_loss"] >= 0.0, name
            if f["share"] is not None:
                assert f["share"] <= 1.0 + 1e-9, name


def test_gates_use_the_backtest_share_against_the_champion() -> None:
    from policies.gates import evaluate_gates

    base = {
        "validation_passed": True,
        "infeasible": 0,
        "worst_gap": 0.0,
        "expected_value": 1.0,
        "champion_expected_value": 1.0,
        "max_gap": 0.05,
        "tolerance": 0.02,
    }
    assert [c.name for c in evaluate_gates(**base).checks] == ["validation", "feasible", "gap", "champion"]
    held = evaluate_gates(**base, backtest_share=0.80, champion_backtest_share=0.90, backtest_tolerance=0.02)
    assert [c.name for c in held.failed] == ["backtest"]
    assert evaluate_gates(**base, backtest_share=0.89, champion_backtest_share=0.90).passed
    assert not evaluate_gates(**base, backtest_share=0.5, backtest_min_share=0.6).passed
