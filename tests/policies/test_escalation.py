"""Escalation-aware ranking: a failing state's serving order weighs what it may already have become."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from policies.scenarios.scenario_set import Scenario
from policies.shedding.admission import admission_caps, contains, escalation_order
from policies.shedding.anticipation import TimedPlan
from policies.shedding.export import decisions_table
from policies.shedding.problem import SheddingProblem, serve_in_order, shedding_objective

IDS = ("a", "b", "c")


def _p(key, capacity, risk=(0.0, 0.0, 0.0), runnable=(True, True, True)):
    value, demand = np.array([10.0, 9.0, 1.0]), np.array([5.0, 5.0, 5.0])
    return SheddingProblem(key, IDS, value, np.array(risk), demand, np.zeros(3), np.array(runnable), capacity, 1)


# x down: room for two, the plan keeps a and b (density a, b, c). If y fails too (the checks see it a
# minute late), one zone is left and a carries y's risk (net 2), so the escalated plan keeps b (net 9).
STATE, WORSE = _p("down=x", 10.0), _p("down=x,y", 5.0, risk=(8.0, 0.0, 0.0))
PLAN, WORSE_PLAN = np.array([1, 1, 0]), np.array([0, 1, 0])


def test_the_containing_relation_reads_degraded_as_escalating_to_down() -> None:
    assert contains({"x", "y"}, (), {"x"}, ())
    assert contains({"x"}, (), (), {"x"})  # degraded x escalated to down x
    assert not contains({"y"}, {"x"}, {"x"}, ())  # x down is not contained in x degraded
    assert not contains({"x"}, (), {"x", "y"}, ())


def test_a_likely_escalation_puts_what_it_keeps_first_and_the_plan_stays_first() -> None:
    caps, worse_caps = admission_caps(STATE, PLAN), admission_caps(WORSE, WORSE_PLAN)
    assert caps.tolist() == [1, 1, 1]  # c's shed is capacity's: left to admission control
    order = escalation_order(STATE, PLAN, caps, [WORSE], [WORSE_PLAN], [worse_caps], 0.3, [0.2])
    assert order.tolist() == [1, 0, 2]  # b, a, then the shed c
    # by hand, over P(state) = 0.3 and P(worse) = 0.2: density order 0.3 * 19 + 0.2 * 2 = 6.1, this one 7.5
    value = {
        tuple(o): 0.3 * shedding_objective(STATE, serve_in_order(STATE, caps, o))
        + 0.2 * shedding_objective(WORSE, serve_in_order(WORSE, caps, o))
        for o in ([0, 1, 2], [1, 0, 2])
    }
    assert value == {(0, 1, 2): 0.3 * 19 + 0.2 * 2, (1, 0, 2): 0.3 * 19 + 0.2 * 9}
    # in the state itself admission control still serves exactly the plan
    assert serve_in_order(STATE, caps, order).tolist() == PLAN.tolist()
    # an escalation that would keep only the shed c cannot lift it above the plan
    c_only = _p("down=x,z", 5.0, runnable=(False, False, True))
    order = escalation_order(STATE, PLAN, caps, [c_only], [np.array([0, 0, 1])], [np.array([0, 0, 1])], 0.3, [0.9])
    assert order.tolist()[2] == 2
    assert escalation_order(STATE, PLAN, caps, [], [], [], 0.3, []) is None  # nothing contains it


def test_the_bundle_ranks_each_state_over_the_states_that_contain_it_only() -> None:
    def scenario(key, down, p):
        return Scenario(key, tuple(down), (), tuple(down), p, 30.0, "test")

    other = _p("down=z", 5.0, risk=(8.0, 0.0, 0.0))  # does not contain x: must not move its order
    scen = [
        scenario("normal", (), 0.4),
        scenario("down=x", ("x",), 0.3),
        scenario("down=x,y", ("x", "y"), 0.2),
        scenario("down=z", ("z",), 0.1),
        Scenario("fallback:all-down", ("x",), (), ("x", "y", "z"), 0.0, 0.0, "fallback"),
    ]
    problems = [_p("normal", 15.0), STATE, WORSE, other, _p("fallback:all-down", 0.0, runnable=(False,) * 3)]
    plans = [[1, 1, 1], PLAN, WORSE_PLAN, [0, 1, 0], [0, 0, 0]]
    results = [
        SimpleNamespace(problem_key=p.key, best=SimpleNamespace(solution=np.array(k))) for p, k in zip(problems, plans)
    ]
    timing = {p.key: TimedPlan(np.array(k), np.zeros(3), 300.0) for p, k in zip(problems[1:4], plans[1:4])}

    def ranks(without=()):
        keep = [i for i, s in enumerate(scen) if s.key not in without]
        table = decisions_table(*([x[i] for i in keep] for x in (scen, results, problems)), timing, 300.0)
        return {(r["scenario_key"], r["workload_id"]): r["rank"] for r in table.to_pylist()}

    got = ranks()
    assert [got[("down=x", w)] for w in IDS] == [2, 1, 3]
    assert [ranks(without=("down=x,y",))[("down=x", w)] for w in IDS] == [1, 2, 3]  # density without it
