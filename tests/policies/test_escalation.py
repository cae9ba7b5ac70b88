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
    order, got_caps = escalation_order(STATE, PLAN, [WORSE], [WORSE_PLAN], [worse_caps], 0.3, [0.2])
    assert order.tolist() == [1, 0, 2] and got_caps.tolist() == caps.tolist()  # b, a, then the shed c
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
    order, _ = escalation_order(STATE, PLAN, [c_only], [np.array([0, 0, 1])], [np.array([0, 0, 1])], 0.3, [0.9])
    assert order.tolist()[2] == 2
    assert escalation_order(STATE, PLAN, [], [], [], 0.3, []) is None  # nothing contains it


def test_a_partial_share_lifted_for_the_density_order_is_capped_when_it_ranks_first() -> None:
    # L = 2, capacity 8, 2 units a level; the plan keeps a whole and one level of b and of c
    def problem(key, capacity, risk=(0.0, 0.0, 0.0), runnable=(True, True, True)):
        return SheddingProblem(key, IDS, np.array([10.0, 9.0, 4.0]), np.array(risk), np.array([4.0, 4.0, 4.0]),
                               np.zeros(3), np.array(runnable), capacity, 2)  # fmt: skip

    p, plan = problem("down=x", 8.0), np.array([2, 1, 1])
    assert admission_caps(p, plan).tolist() == [2, 2, 2]  # density a, b, c: lifting b and c loses nothing
    # if y fails too, a cannot run and b carries y's risk (net 1): c is the one to keep
    worse = problem("down=x,y", 4.0, risk=(0.0, 8.0, 0.0), runnable=(False, True, True))
    worse_plan = np.array([0, 0, 2])
    worse_caps = admission_caps(worse, worse_plan)
    order, caps = escalation_order(p, plan, [worse], [worse_plan], [worse_caps], 0.3, [0.7])
    # by hand: density order with caps (2,2,2): .3 * 19 + .7 * 1 = 6.4; c, b, a with caps (2,1,1):
    # .3 * 16.5 + .7 * (2 + .5) = 6.7
    assert order.tolist() == [2, 1, 0]
    assert caps.tolist() == [2, 1, 1]  # c and b first: lifted, they would crowd a out of the state itself
    assert serve_in_order(p, caps, order).tolist() == plan.tolist()  # in the state itself: the plan
    assert serve_in_order(p, [2, 2, 2], order).tolist() == [0, 2, 2]  # what the density caps would do


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
