"""Admission caps: hand-worked incidents where the runtime's admission control beats shedding by intent."""

from __future__ import annotations

from types import MappingProxyType, SimpleNamespace

import numpy as np

from policies.backtest.costs import SwitchCosts
from policies.backtest.replay import replay_incident
from policies.backtest.timed import TimedPublishedPolicy
from policies.scenarios.scenario_set import Scenario
from policies.shedding.admission import CatchUp, admission_caps, anticipating_order
from policies.shedding.anticipation import TimedPlan
from policies.shedding.export import decisions_table
from policies.shedding.problem import SheddingProblem, serve_in_order, shedding_objective
from qres_client.bundle import encode_parquet
from qres_client.controller import Controller
from qres_client.decision import Action, Decision
from qres_client.index import build_index
from qres_client.schema import DECISIONS_SHEDDING_ADMISSION

IDS = ("a", "b")


def _problem(key, capacity, *, risk=(0.0, 0.0), runnable=(True, True), value=(10.0, 9.0), demand=(5.0, 5.0), L=1):
    return SheddingProblem(
        key, IDS, np.array(value), np.array(risk), np.array(demand), np.zeros(2), np.array(runnable), capacity, L
    )


def test_a_capacity_shed_is_left_to_admission_control_and_a_risk_shed_stays_cut() -> None:
    down = _problem("down=x", 5.0)  # room for one: the plan keeps a (density 2) and sheds b
    assert admission_caps(down, [1, 0]).tolist() == [1, 1]
    assert serve_in_order(down, [1, 1], [0, 1]).tolist() == [1, 0]  # in the state itself: the plan, exactly
    risky = _problem("deg=x", 10.0, risk=(0.0, 12.0))  # b loses value while x is degraded: shed by choice
    assert admission_caps(risky, [1, 0]).tolist() == [1, 0]


def test_a_partial_share_is_lifted_only_when_that_loses_nothing_in_the_state() -> None:
    # L = 2, capacity 6: a whole (4) + half of b (2) = 10 + 4.5 is the optimum
    p = _problem("down=x", 6.0, value=(10.0, 9.0), demand=(4.0, 4.0), L=2)
    caps = admission_caps(p, [2, 1])
    assert caps.tolist() == [2, 2]  # b ranks after a: lifted, it still only gets the level that fits
    assert shedding_objective(p, serve_in_order(p, caps, [0, 1])) == shedding_objective(p, [2, 1])
    # a 3-way fit: a (d 2) + half of b (1) + half of c (3) = 2 + 1 + 1.5 beats a + b whole (4, c gets nothing)
    r = SheddingProblem(
        "down=z", ("a", "b", "c"), np.array([2.0, 2.0, 3.0]), np.zeros(3), np.array([2.0, 2.0, 6.0]),
        np.zeros(3), np.ones(3, bool), 6.0, 2,
    )  # fmt: skip
    assert admission_caps(r, [2, 1, 1]).tolist() == [2, 1, 1]  # lifted, b would crowd c out: 4 < 4.5


def test_the_normal_order_anticipates_the_likely_outage() -> None:
    normal = _problem("normal", 10.0)  # a is denser in normal times
    # when x fails, a carries a risk that makes b the better one to keep; the checks see it 2 min late
    failing = _problem("down=x", 5.0, risk=(6.0, 0.0))
    order = anticipating_order(normal, [1, 1], [failing], [np.array([0, 1])], [np.array([1, 1])], [1.0])
    assert order.tolist() == [1, 0]
    assert shedding_objective(failing, serve_in_order(failing, [1, 1], order)) == 9.0  # not a's 4
    # an outage that is rarely seen does not overturn the density order
    mild = _problem("down=y", 5.0)
    caps = [np.array([1, 1])] * 2
    assert anticipating_order(normal, [1, 1], [failing, mild], [[0, 1], [1, 0]], caps, [0.1, 0.9]).tolist() == [0, 1]


def test_between_equal_values_the_normal_order_serves_what_the_state_will_so_catching_up_costs_no_switch() -> None:
    normal = _problem("normal", 10.0, value=(10.0, 10.0))  # a and b are alike: density order is a, b
    failing = _problem("down=x", 5.0, value=(10.0, 10.0))  # room for one; the plan keeps b
    assert serve_in_order(failing, [1, 1], [0, 1]).tolist() == [1, 0]  # density would serve a at onset...
    order = anticipating_order(normal, [1, 1], [failing], [np.array([0, 1])], [np.array([1, 1])], [1.0])
    assert order.tolist() == [1, 0]  # ...then switch to b when the checks report x; b first avoids that
    assert serve_in_order(failing, [1, 1], order).tolist() == [0, 1]


def test_with_catch_up_the_normal_order_pays_the_switch_a_tie_would_cost_in_the_likely_outage() -> None:
    # x (p 0.9): a carries risk 1, so a and b are worth 9 each and the plan keeps b; y (p 0.1): a is worth more
    normal = _problem("normal", 10.0)
    x = _problem("down=x", 5.0, risk=(1.0, 0.0))
    y = _problem("down=y", 5.0)
    args = (normal, [1, 1], [x, y], [np.array([0, 1]), np.array([1, 0])], [np.array([1, 1])] * 2, [0.9, 0.1])
    # value alone: a first keeps 0.9 x 9 + 0.1 x 10 = 9.1 per hour against b first's 9.0
    assert anticipating_order(*args).tolist() == [0, 1]
    # a level down costs 1, up 2; the checks lag 2 min. a first: in x 9/30 - 1 (drain b) - 3 (a down, b up)
    # = -3.7, in y 10/30 - 1; b first: in x 9/30 - 1, in y 9/30 - 1 - 3. Weighted: -3.397 against -1.0
    costs = SwitchCosts(IDS, np.array([3600.0, 3600.0]), np.ones(2), np.ones(2), 1)
    order = anticipating_order(*args, catch_up=CatchUp(2.0 / 60.0, costs))
    assert order.tolist() == [1, 0]
    assert serve_in_order(x, [1, 1], order).tolist() == [0, 1]  # x's own plan from the first minute


def test_the_catch_up_is_to_what_the_outage_serves_in_its_own_order() -> None:
    # L = 2, a and b alike (10/h, demand 4); x has room for 5: half of each, or all of one, are worth 10
    normal = _problem("normal", 10.0, value=(10.0, 10.0), demand=(4.0, 4.0), L=2)
    x = _problem("down=x", 5.0, value=(10.0, 10.0), demand=(4.0, 4.0), L=2)
    plan, caps = np.array([1, 1]), admission_caps(x, [1, 1])
    assert caps.tolist() == [2, 2]  # lifted: whichever ranks first runs whole, as much value
    args = (normal, [2, 2], [x], [plan], [caps], [1.0])
    costs = SwitchCosts(IDS, np.array([3600.0, 3600.0]), np.ones(2), np.ones(2), 2)
    catch_up = CatchUp(2.0 / 60.0, costs)
    assert anticipating_order(*args, catch_up=catch_up).tolist() == [0, 1]  # x in density order: a whole
    # x's own (escalation) order serves b first: meeting x with a would cost a switch once the checks see it
    order = anticipating_order(*args, orders=[np.array([1, 0])], catch_up=catch_up)
    assert order.tolist() == [1, 0]
    assert serve_in_order(x, [2, 2], order).tolist() == [0, 2]


def _bundle() -> bytes:
    scen = [
        Scenario("normal", (), (), (), 0.5, 0.0, "test"),
        Scenario("down=x", ("x",), (), ("x",), 0.5, 30.0, "test"),
        Scenario("fallback:all-down", ("x",), (), ("a", "b", "x"), 0.0, 0.0, "fallback"),
    ]
    problems = [_problem("normal", 10.0), _problem("down=x", 5.0), _problem("fallback:all-down", 0.0)]
    results = [
        SimpleNamespace(problem_key=p.key, best=SimpleNamespace(solution=np.array(k)))
        for p, k in zip(problems, ([1, 1], [1, 0], [0, 0]))
    ]
    timing = {"down=x": TimedPlan(levels=np.array([1, 0]), act_after_s=np.zeros(2), hold_s=300.0)}
    table = decisions_table(scen, results, problems, timing, 300.0)
    assert table.schema.equals(DECISIONS_SHEDDING_ADMISSION)
    rows = {(r["scenario_key"], r["workload_id"]): (r["admit"], r["admit_max"]) for r in table.to_pylist()}
    assert rows[("down=x", "b")] == (0.0, 1.0)  # shed by the plan, left to admission control
    return encode_parquet(table)


def test_recovery_is_served_at_once_while_the_checks_still_say_down() -> None:
    index = build_index("shedding", "v000001", {}, {"decisions.parquet": _bundle()})
    policy = TimedPublishedPolicy(index, "greedy", window_min=1)
    normal, down = _problem("normal", 10.0), _problem("down=x", 5.0)

    def view(p, d=()):
        return SimpleNamespace(problem=p, down=frozenset(d), degraded=frozenset(), key=p.scenario_key)

    # 3 windows down, then recovered; the checks follow 1 window late
    truth = [view(down, ["x"])] * 3 + [view(normal)] * 2
    seen = [view(normal)] + [view(down, ["x"])] * 3 + [view(normal)]
    costs = SwitchCosts(IDS, np.array([10.0, 9.0]), np.zeros(2), np.zeros(2), 1)
    run = replay_incident(policy, truth, seen, view(normal), costs)
    # onset: admission control serves a alone at once; recovery: b runs again in the first window
    assert [k.tolist() for k in run.realized] == [[1, 0]] * 3 + [[1, 1]] * 2
    assert run.values.tolist() == [10.0] * 3 + [19.0] * 2
    assert [d.levels.tolist() for d in run.decisions][1:4] == [[1, 1]] * 3  # intends b's cap, not its cut


def test_the_controller_holds_a_lowered_cap_like_a_share() -> None:
    def decision(key, admit, cap):
        extras = MappingProxyType({"act_after_s": 0.0, "hold_s": 600.0, "admit_max": cap})
        return Decision("shedding", "v1", key, True, (Action("w", admit, 1, extras),))

    plans = {"normal": decision("normal", 1.0, 1.0), "down=x": decision("down=x", 0.5, 0.5)}
    ctl = Controller(lambda down, degraded: plans["down=x" if down else "normal"])
    caps = [ctl.step(t, down=d).actions[0].extras["admit_max"] for t, d in ((0, ()), (10, ("x",)), (60, ()))]
    assert caps == [1.0, 0.5, 0.5]  # lowered at once, raised only after hold_s
    assert ctl.step(610.0).actions[0].extras["admit_max"] == 1.0
    assert ctl.step(611.0).actions[0].extras["target_max"] == 1.0


def test_an_older_timed_bundle_still_loads_and_applies_admit() -> None:
    from tests.policies.test_client_controller import _plans

    assert "admit_max" not in _plans().column_names
    index = build_index("shedding", "v000001", {}, {"decisions.parquet": encode_parquet(_plans(act_after_s=0.0))})
    policy = TimedPublishedPolicy(index, "greedy", window_min=1)
    p = SheddingProblem("v", ("w1", "w2"), np.ones(2), np.zeros(2), np.ones(2), np.zeros(2), np.ones(2, bool), 2.0, 2)
    policy.reset()
    policy.step(-1, SimpleNamespace(problem=p, down=frozenset(), degraded=frozenset(), key="normal"))
    d = policy.step(0, SimpleNamespace(problem=p, down=frozenset({"db"}), degraded=frozenset(), key="db"))
    assert d.levels.tolist() == [0, 1]


def test_the_live_admission_rule_recovers_at_once_and_live_greedy_keeps_shedding_through_the_delay() -> None:
    from policies.backtest.policies import AdmissionGreedyPolicy, GreedyPolicy

    normal, down = _problem("normal", 10.0), _problem("down=x", 5.0)

    def view(p, d=()):
        return SimpleNamespace(problem=p, down=frozenset(d), degraded=frozenset(), key=p.scenario_key)

    truth = [view(down, ["x"])] * 3 + [view(normal)] * 2
    seen = [view(normal)] + [view(down, ["x"])] * 3 + [view(normal)]
    costs = SwitchCosts(IDS, np.array([10.0, 9.0]), np.zeros(2), np.zeros(2), 1)
    live = replay_incident(AdmissionGreedyPolicy(), truth, seen, view(normal), costs)
    cut = replay_incident(GreedyPolicy(), truth, seen, view(normal), costs)
    assert [d.levels.tolist() for d in live.decisions][1:4] == [[1, 1]] * 3  # b's capacity shed is left to admission
    assert live.values.tolist() == [10.0] * 3 + [19.0] * 2  # b runs again in the first recovered window
    assert cut.values.tolist() == [10.0] * 3 + [10.0, 19.0]  # greedy's cut of the observed state lasts one more
    risky = _problem("deg=x", 10.0, risk=(0.0, 12.0))
    assert AdmissionGreedyPolicy().step(0, view(risky)).levels.tolist() == [1, 0]  # a risk shed stays cut
