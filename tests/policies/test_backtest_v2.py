"""Backtest v2 by hand: switching costs, the dwell, the hindsight oracle, avoidable loss, CVaR95, MTTSF, overlays."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from policies.backtest.costs import SwitchCosts, switch_costs
from policies.backtest.metrics import incident_figures, summarize
from policies.backtest.oracle import hindsight_oracle
from policies.backtest.overlay import OVERLAY_NAMES, load_overlay, map_sites
from policies.backtest.policies import Decision, DwellPolicy, GreedyPolicy, ReplayPolicy, state_optimum
from policies.backtest.replay import Incident, StateCatalog, replay_incident
from policies.model.states import DEGRADED, DOWN, UP
from policies.shedding.policy import build_shedding_problems

RISK = pa.list_(pa.struct([("depends_on", pa.string()), ("cost_per_hour", pa.float64())]))


def _tables(**extra) -> dict[str, pa.Table]:
    """One region of 10 units; 'cheap' (1/h, tier 0) and 'precious' (100/h, tier 1, needs saas-x), 5 units each."""
    services = pa.table(
        {"service_id": ["region-a", "saas-x"], "kind": ["region", "saas"], "tier": [0, 2], "capacity": [10.0, 0.0]}
    )
    deps = pa.table(
        {
            "service_id": pa.array([], pa.string()),
            "depends_on": pa.array([], pa.string()),
            "hard": pa.array([], pa.bool_()),
        }
    )
    cols = {
        "workload_id": ["cheap", "precious"],
        "service_id": ["region-a", "region-a"],
        "value_per_hour": [1.0, 100.0],
        "demand": [5.0, 5.0],
        "min_share": [0.0, 0.0],
        "tier": [0, 1],
        "requires": pa.array([["region-a"], ["region-a", "saas-x"]], pa.list_(pa.string())),
        "risks": pa.array([[], []], RISK),
        **extra,
    }
    return {"services": services, "dependencies": deps, "workloads": pa.table(cols)}


def _costs(switch_s: float, warmup_s: float) -> SwitchCosts:
    return SwitchCosts(("cheap", "precious"), np.array([1.0, 100.0]), np.full(2, switch_s), np.full(2, warmup_s), 4)


class Scripted:
    """A policy that plays a fixed list of level vectors (window -1 first), serving in id order."""

    adaptive = True

    def __init__(self, name: str, plan: list[list[int]]) -> None:
        self.name, self.plan = name, [np.asarray(p, dtype=np.int64) for p in plan]

    def reset(self) -> None:
        pass

    def step(self, window: int, view) -> Decision:
        return Decision(self.plan[window + 1], np.arange(len(self.plan[0]), dtype=np.int64))


def test_switching_cost_is_lost_work_plus_warmup_per_level_changed() -> None:
    c = _costs(36.0, 72.0)  # 36 s of drain and 72 s of warm-up per full share
    # precious drops from 4/4 to 0: 100/h * 36 s = 1.0; cheap rises 0 -> 2/4: 1/h * 0.5 * (36 + 72) s = 0.015
    assert c.charge(np.array([0, 4]), np.array([2, 0])) == pytest.approx(1.0 + 0.015)
    assert c.charge(np.array([3, 3]), np.array([3, 3])) == 0.0
    # the way back pays the warm-up too: 100/h * (36 + 72) s = 3.0
    assert c.charge(np.array([0, 0]), np.array([0, 4])) == pytest.approx(3.0)


def test_switching_cost_defaults_come_from_the_tier_and_columns_override_them() -> None:
    defaults = switch_costs(_tables()["workloads"], levels=4)
    assert defaults.switch_cost_s.tolist() == [30.0, 30.0]
    assert defaults.warmup_s.tolist() == [240.0, 180.0]  # 60 s * (4 - tier)
    given = switch_costs(_tables(warmup_s=pa.array([None, 5.0], pa.float64()))["workloads"], levels=4)
    assert given.warmup_s.tolist() == [240.0, 5.0]  # a null cell keeps the default


def _world(rows):
    tables = _tables()
    catalog = StateCatalog(tables, ("region-a", "saas-x"))
    truth = catalog.views_of(np.array(rows, dtype=np.int8))
    normal = catalog.views_of(np.array([[UP, UP]], dtype=np.int8))[0]
    return catalog, truth, normal


def test_every_change_of_a_realized_level_is_charged_and_the_way_back_too() -> None:
    _, truth, normal = _world([[DEGRADED, UP]] * 2 + [[UP, UP]])
    flip = Scripted("flip", [[4, 4], [0, 4], [0, 4], [4, 4]])  # sheds cheap for the degraded windows
    run = replay_incident(flip, truth, truth, normal, _costs(36.0, 72.0))
    # cheap 4 -> 0 at window 0 (1/h * 36 s = 0.01), back 0 -> 4 at window 2 (1/h * 108 s = 0.03)
    assert run.switch.tolist() == pytest.approx([0.01, 0.0, 0.03])
    assert run.values.tolist() == [100.0, 100.0, 101.0]
    assert (run.changes, run.first_change) == (2, 0)


def test_greedy_with_a_dwell_holds_each_decision_for_the_dwell() -> None:
    catalog, _, normal = _world([[UP, UP]])
    up, down = normal, catalog.views_of(np.array([[UP, DOWN]], dtype=np.int8))[0]
    views = [down, up, down, up, up, up, down]
    live = [GreedyPolicy().step(t, v).levels.tolist() for t, v in enumerate(views)]
    held = DwellPolicy(GreedyPolicy(), 3)
    held.reset()
    held.step(-1, up)
    got = [held.step(t, v).levels.tolist() for t, v in enumerate(views)]
    a, b = live[1], live[0]  # the normal decision and the one for saas-x down
    assert a != b
    # changes at 0 (first change is free), then held 3 windows: back to normal at 3, held to 5, then 6
    assert got == [b, b, b, a, a, a, b]
    assert isinstance(held, ReplayPolicy)


def test_the_oracle_pays_switching_costs_and_holds_through_a_short_dip() -> None:
    # saas-x degraded for one minute: running 'precious' then risks 110/h > its 100/h, so the
    # per-window optimum sheds it. Shedding and restarting costs 100/h * (30 s + 30 s + 180 s) = 6.67,
    # far more than the 10/h * 1/60 h it saves: the oracle holds, live greedy (no delay) switches.
    tables = _tables(risks=pa.array([[], [{"depends_on": "saas-x", "cost_per_hour": 220.0}]], RISK))
    catalog = StateCatalog(tables, ("region-a", "saas-x"))
    truth = catalog.views_of(np.array([[UP, DEGRADED], [UP, UP]], dtype=np.int8))
    normal = catalog.views_of(np.array([[UP, UP]], dtype=np.int8))[0]
    c, hours = switch_costs(tables["workloads"], levels=4), 1 / 60
    greedy = replay_incident(GreedyPolicy(), truth, truth, normal, c)
    cands = greedy.decisions + [state_optimum(v) for v in truth]
    oracle = hindsight_oracle(truth, normal, cands, [greedy.normal], c, hours)
    assert greedy.intended[0].tolist() == [4, 0] and greedy.changes == 2
    assert greedy.switch.sum() == pytest.approx(100 * 240 / 3600)
    assert oracle.changes == 0 and oracle.switch.sum() == 0.0
    assert oracle.values.tolist() == pytest.approx([1.0 + 100.0 - 110.0, 101.0])
    gap = (oracle.values.sum() - greedy.values.sum()) * hours - (oracle.switch.sum() - greedy.switch.sum())
    assert gap == pytest.approx(100 * 240 / 3600 - 10 / 60)  # greedy's avoidable loss


def test_no_replayed_policy_ever_beats_the_oracle() -> None:
    rng = np.random.default_rng(5)
    states = [UP, DEGRADED, DOWN]
    for trial in range(12):
        rows = [[UP, UP]] + [[states[rng.integers(0, 2)], states[rng.integers(0, 3)]] for _ in range(6)]
        _, truth, normal = _world(rows)
        c = _costs(float(rng.uniform(0, 600)), float(rng.uniform(0, 600)))
        runs = {
            f"p{i}": replay_incident(Scripted(f"p{i}", rng.integers(0, 5, (8, 2)).tolist()), truth, truth, normal, c)
            for i in range(4)
        }
        made = [d for r in runs.values() for d in r.decisions]
        oracle = hindsight_oracle(truth, normal, made, [r.normal for r in runs.values()], c, 1.0)
        best = oracle.values.sum() - oracle.switch.sum()
        for name, r in runs.items():
            assert r.values.sum() - r.switch.sum() <= best + 1e-9, (trial, name)


def _full(window_min: int = 1):
    return SimpleNamespace(window_min=window_min, start=pd.Timestamp("2026-01-01", tz="UTC"))


def test_avoidable_loss_and_mttsf_of_a_degraded_then_down_outage() -> None:
    # saas-x degraded (half risk: none here), then down for 3 windows; greedy sees it one window late.
    rows = [[UP, DEGRADED], [UP, DOWN], [UP, DOWN], [UP, DOWN], [UP, UP]]
    _, truth, normal = _world(rows)
    observed = [normal] + truth[:-1]
    c = _costs(0.0, 0.0)
    runs = {"greedy": replay_incident(GreedyPolicy(), truth, observed, normal, c)}
    runs["oracle"] = hindsight_oracle(truth, normal, runs["greedy"].decisions, [runs["greedy"].normal], c, 1.0)
    inc = Incident(1, 0, 5, 4, ("saas-x",))
    fig = incident_figures(inc, _full(), truth, runs, 101.0)
    g, o = fig["policies"]["greedy"], fig["policies"]["oracle"]
    # precious cannot run in 3 windows: 3 * 100/h * 1/60 h = 5.0 lost by everybody; greedy also
    # sees the recovery a window late and keeps precious shed in the last window: 100/60 avoidable
    assert o["loss"] == pytest.approx(5.0)
    assert g["loss"] == pytest.approx(5.0 + 100 / 60) and g["avoidable_loss"] == pytest.approx(100 / 60)
    assert g["switch_min"] == 2  # 'degraded' changes nothing here; 'down' is seen in window 2, one late
    assert (g["decision_changes"], o["decision_changes"]) == (1, 0)  # its way back falls after the last window
    assert fig["impacting"]


def test_avoidable_loss_cvar95_and_recovered_share_over_incidents() -> None:
    def inc(avoid_pub: float, avoid_keep: float) -> dict:
        pol = {}
        for name, a in (("published", avoid_pub), ("fcfs", avoid_keep), ("greedy", 2 * avoid_pub), ("oracle", 0.0)):
            pol[name] = {
                "value": 100.0 - a,
                "share": (100.0 - a) / 100.0,
                "loss": 10.0 + a,
                "avoidable_loss": a,
                "switch_cost": 0.0,
                "decision_changes": 1,
                "min_share_violation_min": 0,
                "switch_min": 1,
                "kl": 0.0,
            }
        return {"impacting": True, "policies": pol}

    s = summarize([inc(1.0, 4.0), inc(3.0, 6.0), inc(0.0, 10.0)], alpha=0.95)
    pub = s["overall"]["published"]
    assert pub["avoidable_loss"] == pytest.approx(4.0)
    assert pub["avoidable_cvar"] == pytest.approx(3.0)  # 3 incidents: the tail is the worst one
    assert pub["recovered"] == pytest.approx(1.0 - 4.0 / 20.0)
    assert s["overall"]["oracle"]["recovered"] == pytest.approx(1.0)
    assert s["goal"]["avoidable_loss_vs_greedy"] == pytest.approx(0.5)
    assert s["goal"]["half_of_greedy_met"] is True
    # keep-all loses nothing avoidable: no share of nothing is reported
    assert summarize([inc(0.0, 0.0)])["overall"]["published"]["recovered"] is None


@pytest.mark.parametrize("name", [n for n in OVERLAY_NAMES if n != "sample"])
def test_named_overlays_are_consistent_and_a_lost_zone_binds(name: str) -> None:
    from policies.scenarios.scenario_set import Scenario

    tables, targets = load_overlay(name)
    ids = set(tables["services"].column("service_id").to_pylist())
    assert set(targets) <= ids and targets[:3] == ["zone-a", "zone-b", "zone-c"]
    assert set(tables["dependencies"].column("depends_on").to_pylist()) <= ids
    zone_down = Scenario("down=zone-a", ("zone-a",), (), ("zone-a",), 0.0, 0.0, "test")
    normal = Scenario("normal", (), (), (), 0.0, 0.0, "test")
    lost, fine = build_shedding_problems(
        tables["services"], tables["dependencies"], tables["workloads"], [zone_down, normal]
    )
    assert (fine.capacity, fine.demand.sum()) == pytest.approx((300.0, 255.0))  # 85% of the zones
    assert lost.capacity == pytest.approx(200.0)
    assert lost.capacity < lost.demand[lost.runnable].sum()  # a lost zone makes capacity bind


def test_sites_map_onto_declared_targets_in_sha256_order() -> None:
    checks = pa.table({"service_id": ["calm", "wild", "wild", "mid"], "status": ["up", "down", "down", "down"]})
    order = sorted(["calm", "mid", "wild"], key=lambda s: hashlib.sha256(s.encode()).hexdigest())
    got = map_sites(checks, {}, ["t0", "t1"])
    assert got == {order[0]: "t0", order[1]: "t1", order[2]: "t0"}
    quiet = pa.table({"service_id": ["calm", "wild", "mid"], "status": ["up", "up", "up"]})
    assert map_sites(quiet, {}, ["t0", "t1"]) == got  # what failed does not move a site


def test_a_history_with_nothing_after_the_split_is_refused_on_an_overlay(tmp_path) -> None:
    from typer.testing import CliRunner

    from flows.cli.app import app
    from flows.cli.common import EXIT_REFUSED
    from tests.policies.test_backtest_guards import _imported

    folder = _imported(tmp_path, [20, 60])  # two outages, both before the split at 70%
    res = CliRunner().invoke(app, ["backtest", "--data", str(folder), "--overlay", "dsb-hotel", "--json", "-q"])
    assert res.exit_code == EXIT_REFUSED and "no incident starts after the split" in res.output
    assert '"overall"' not in res.output
