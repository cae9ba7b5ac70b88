"""Standby in the backtest by hand: served when the copy's site is up, charged per hour, partial when short."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from policies.backtest.costs import SwitchCosts
from policies.backtest.metrics import incident_figures
from policies.backtest.oracle import hindsight_oracle
from policies.backtest.overlay import OVERLAY_NAMES, load_overlay
from policies.backtest.policies import Decision, GreedyPolicy, StandbyPolicy
from policies.backtest.replay import Incident, Realizer, StateCatalog, replay_incident
from policies.backtest.standby import StandbyWorld, standby_summary
from policies.model.states import DOWN, UP
from policies.schema import TABLES

RISK = pa.list_(pa.struct([("depends_on", pa.string()), ("cost_per_hour", pa.float64())]))
NAMES = ("region-a", "region-b", "saas-x")


def _tables(coverage: float = 1.0, cost: float = 2.0) -> dict[str, pa.Table]:
    """Region-a has 10 units; 'cheap' (1/h) and 'precious' (100/h, needs saas-x), 5 units each.

    One standby copy of saas-x at site dr-1 in region-b (no capacity of its own in the pool).
    """
    services = pa.table(
        {
            "service_id": list(NAMES),
            "kind": ["region", "region", "saas"],
            "tier": [0, 0, 2],
            "capacity": [10.0, 0.0, 0.0],
        }
    )
    deps = pa.table(
        {
            "service_id": pa.array([], pa.string()),
            "depends_on": pa.array([], pa.string()),
            "hard": pa.array([], pa.bool_()),
        }
    )
    workloads = pa.table(
        {
            "workload_id": ["cheap", "precious"],
            "service_id": ["region-a", "region-a"],
            "value_per_hour": [1.0, 100.0],
            "demand": [5.0, 5.0],
            "min_share": [0.0, 0.0],
            "tier": [1, 0],
            "requires": pa.array([["region-a"], ["region-a", "saas-x"]], pa.list_(pa.string())),
            "risks": pa.array([[], []], RISK),
        }
    )
    sites = pa.table({"site_id": ["dr-1"], "region": ["region-b"], "budget": [10.0]}, schema=TABLES["sites"])
    cands = pa.table(
        {
            "candidate_id": ["sb-x"],
            "service_id": ["saas-x"],
            "site_id": ["dr-1"],
            "cost": [cost],
            "coverage": [coverage],
        },
        schema=TABLES["standby_candidates"],
    )
    return {
        "services": services,
        "dependencies": deps,
        "workloads": workloads,
        "sites": sites,
        "standby_candidates": cands,
    }


def _views(tables, rows):
    catalog = StateCatalog(tables, NAMES)
    return catalog.views_of(np.array(rows, dtype=np.int8)), catalog.views_of(np.array([[UP, UP, UP]], np.int8))[0]


def _keep_all(standby: tuple[str, ...] = ()) -> Decision:
    return Decision(np.array([4, 4]), np.array([1, 0]), standby)  # precious first


def test_primary_down_and_a_warm_copy_at_an_up_site_serves_it_and_is_charged() -> None:
    tables = _tables()
    (truth,), _ = _views(tables, [[UP, UP, DOWN]])
    realize = Realizer(StandbyWorld(tables))
    k, v = realize(truth, _keep_all(("sb-x",)))
    assert k.tolist() == [4, 4]  # precious runs on the copy, cheap on the primary
    assert v == pytest.approx(1.0 + 100.0 - 2.0)  # both served, minus the copy's 2/h
    assert realize.standby(truth, _keep_all(("sb-x",))) == pytest.approx((100.0, 2.0))


def test_the_copy_is_no_use_when_its_site_is_down_too_but_still_costs() -> None:
    tables = _tables()
    (truth,), _ = _views(tables, [[UP, DOWN, DOWN]])  # region-b takes dr-1 down
    realize = Realizer(StandbyWorld(tables))
    k, v = realize(truth, _keep_all(("sb-x",)))
    assert k.tolist() == [4, 0]
    assert v == pytest.approx(1.0 - 2.0)
    assert realize.standby(truth, _keep_all(("sb-x",))) == pytest.approx((0.0, 2.0))


def test_a_copy_short_of_capacity_serves_part_of_the_workload() -> None:
    tables = _tables(coverage=0.5)  # 2.5 of precious's 5 units: 2 of 4 levels (1.25 units each)
    (truth,), _ = _views(tables, [[UP, UP, DOWN]])
    realize = Realizer(StandbyWorld(tables))
    k, v = realize(truth, _keep_all(("sb-x",)))
    assert k.tolist() == [4, 2]
    assert v == pytest.approx(1.0 + 50.0 - 2.0)


def test_without_a_placement_nothing_changes() -> None:
    tables = _tables()
    rows = [[UP, UP, DOWN], [UP, DOWN, DOWN], [UP, UP, UP]]
    truth, _ = _views(tables, rows)
    with_world, plain = Realizer(StandbyWorld(tables)), Realizer()
    for t in truth:
        a, b = with_world(t, _keep_all()), plain(t, _keep_all())
        assert a[0].tolist() == b[0].tolist() and a[1] == b[1]
        assert with_world.standby(t, _keep_all()) == (0.0, 0.0)


def _costs() -> SwitchCosts:
    return SwitchCosts(("cheap", "precious"), np.array([1.0, 100.0]), np.full(2, 36.0), np.full(2, 72.0), 4)


def test_a_failover_to_a_warm_copy_pays_no_switching_and_the_figures_count_it() -> None:
    tables = _tables()
    truth, normal = _views(tables, [[UP, UP, DOWN]] * 3 + [[UP, UP, UP]])
    realize, c = Realizer(StandbyWorld(tables)), _costs()
    runs = {
        "greedy": replay_incident(GreedyPolicy(), truth, truth, normal, c, realize),
        "greedy_standby": replay_incident(
            StandbyPolicy(GreedyPolicy(), ("sb-x",), name="greedy_standby"), truth, truth, normal, c, realize
        ),
    }
    made = [d for r in runs.values() for d in r.decisions]
    runs["oracle"] = hindsight_oracle(truth, normal, made, [r.normal for r in runs.values()], c, 1.0, realize)
    sb, bare = runs["greedy_standby"], runs["greedy"]
    assert bare.switch.sum() == pytest.approx(100.0 * (36 + 36 + 72) / 3600)  # precious drained, restarted
    assert sb.switch.sum() == 0.0 and sb.standby_value.tolist() == [100.0, 100.0, 100.0, 0.0]
    assert bare.standby_value is None
    full = SimpleNamespace(window_min=60, start=pd.Timestamp("2026-01-01", tz="UTC"))
    fig = incident_figures(Incident(1, 0, 4, 3, ("saas-x",)), full, truth, runs, 101.0)["policies"]
    assert fig["greedy_standby"]["standby_value"] == pytest.approx(300.0)  # 3 hours of 100/h
    assert fig["greedy_standby"]["standby_cost"] == pytest.approx(8.0)  # held 4 hours at 2/h
    assert fig["greedy_standby"]["loss"] == pytest.approx(8.0)  # nothing lost but the copy's cost
    assert fig["greedy"]["loss"] == pytest.approx(300.0 + 4.0)  # 3 h of precious, plus switching
    assert fig["oracle"]["loss"] <= fig["greedy_standby"]["loss"] + 1e-9
    assert standby_summary(realize.world, ("sb-x",), 10.0) == {
        "placed": ["sb-x"],
        "cost_per_h": 2.0,
        "test_period_cost": 20.0,
    }


def test_no_policy_with_or_without_standby_ever_beats_the_oracle() -> None:
    rng = np.random.default_rng(11)
    for trial in range(10):
        tables = _tables(coverage=float(rng.uniform(0.2, 1.0)), cost=float(rng.uniform(0, 60)))
        rows = [[UP, UP, UP]] + [[UP, int(rng.choice([UP, DOWN])), int(rng.choice([UP, DOWN]))] for _ in range(6)]
        truth, normal = _views(tables, rows)
        c = SwitchCosts(
            ("cheap", "precious"), np.array([1.0, 100.0]), np.full(2, rng.uniform(0, 600)), np.full(2, 60.0), 4
        )
        realize = Realizer(StandbyWorld(tables))
        runs = {}
        for i in range(4):
            plan = rng.integers(0, 5, (8, 2)).tolist()
            placement = ("sb-x",) if i % 2 else ()

            class Scripted:
                name, adaptive = f"p{i}", True

                def reset(self) -> None:
                    pass

                def step(self, window, view, plan=plan, placement=placement) -> Decision:
                    return Decision(np.asarray(plan[window + 1]), np.array([1, 0]), placement)

            runs[f"p{i}"] = replay_incident(Scripted(), truth, truth, normal, c, realize)
        made = [d for r in runs.values() for d in r.decisions]
        oracle = hindsight_oracle(truth, normal, made, [r.normal for r in runs.values()], c, 1.0, realize)
        best = oracle.values.sum() - oracle.switch.sum()
        for name, r in runs.items():
            assert r.values.sum() - r.switch.sum() <= best + 1e-9, (trial, name)


@pytest.mark.parametrize("name", [n for n in OVERLAY_NAMES if n != "sample"])
def test_overlay_standby_rows_follow_the_readme_rule(name: str) -> None:
    tables, _ = load_overlay(name)
    zones = [r for r in tables["services"].to_pylist() if r["kind"] == "region"]
    wl = tables["workloads"].to_pylist()
    unit = 0.10 * sum(w["value_per_hour"] for w in wl) / sum(z["capacity"] for z in zones)
    demand: dict[str, float] = {}
    for w in wl:
        for j in {w["service_id"], *w["requires"]}:
            demand[j] = demand.get(j, 0.0) + w["demand"]
    sites = tables["sites"].to_pylist()
    assert sorted((s["site_id"], s["region"]) for s in sites) == [
        (f"standby-{z['service_id'].removeprefix('zone-')}", z["service_id"]) for z in zones
    ]
    assert all(s["budget"] == pytest.approx(30 * unit, abs=0.01) for s in sites)
    cands = tables["standby_candidates"].to_pylist()
    assert {(c["service_id"], c["site_id"]) for c in cands} == {
        (j, s["site_id"]) for j in demand if j not in {z["service_id"] for z in zones} for s in sites
    }
    for c in cands:
        assert c["coverage"] == 0.5 and c["cost"] == pytest.approx(0.5 * demand[c["service_id"]] * unit, abs=0.01)
