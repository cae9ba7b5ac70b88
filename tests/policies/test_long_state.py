"""The long-run step: a state that outlives its plan's horizon gets the static optimum's risk sheds."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from policies.backtest.costs import SwitchCosts
from policies.backtest.replay import replay_incident
from policies.backtest.timed import TimedPublishedPolicy
from policies.scenarios.scenario_set import Scenario
from policies.shedding.anticipation import TimedPlan
from policies.shedding.export import decisions_table, shedding_actions
from policies.shedding.horizon import HorizonProblem
from policies.shedding.long_state import late_risk_sheds
from policies.shedding.problem import SheddingProblem
from qres_client.bundle import encode_parquet
from qres_client.controller import Controller
from qres_client.index import build_index
from qres_client.schema import DECISIONS_SHEDDING_ADMISSION, DECISIONS_SHEDDING_LATE

IDS = ("a", "b")


def _problem(key: str, risk_a: float) -> SheddingProblem:
    # a is worth 10/h, b 10/h; in down=x a carries a risk of 190/h: running it loses 180/h, 3 per minute
    return SheddingProblem(
        key, IDS, np.array([10.0, 10.0]), np.array([risk_a, 0.0]), np.ones(2), np.zeros(2), np.ones(2, bool), 10.0, 1
    )


def _horizon(steps: int = 5) -> HorizonProblem:
    # a 5-minute horizon; shedding a costs its drain (5) now and its warm-up (15) at recovery
    return HorizonProblem(
        base=_problem("down=x", 190.0),
        step_s=60.0,
        survival=np.ones(steps),
        prev=np.array([1, 1]),
        exit_levels=np.array([[1, 1]]),
        down_cost=np.array([5.0, 5.0]),
        up_cost=np.array([15.0, 15.0]),
    )


def test_a_risk_shed_the_plan_rode_out_waits_until_the_expected_time_left_pays_its_switch() -> None:
    p, plan, static = _horizon(), np.array([1, 1]), np.array([0, 1])
    # memoryless, 30 minutes left on average: 30 x 3 >= 5 + 15 already at the horizon's end
    levels, after = late_risk_sheds(p, static, plan, np.zeros(2), lambda t: 30.0, 0)
    assert levels.tolist() == [0, 1] and after.tolist() == [300.0, 0.0]
    # 5 minutes left: 15 < 20, the shed never pays, nothing to add
    assert late_risk_sheds(p, static, plan, np.zeros(2), lambda t: 5.0, 0) is None
    # a heavy tail (t minutes left after t): 3 t >= 20 first at minute 7, within the history's 60 minutes
    levels, after = late_risk_sheds(p, static, plan, np.zeros(2), lambda t: float(t), 60)
    assert after[0] == 7 * 60.0
    assert late_risk_sheds(p, static, plan, np.zeros(2), lambda t: float(t), 6) is None  # no episode lasted 7
    # a capacity shed (b has no risk) never moves: admission control serves it
    assert late_risk_sheds(p, np.array([1, 0]), plan, np.zeros(2), lambda t: 30.0, 0) is None


def _bundle(late: bool) -> bytes:
    scen = [
        Scenario("normal", (), (), (), 0.5, 0.0, "test"),
        Scenario("down=x", ("x",), (), ("x",), 0.5, 30.0, "test"),
        Scenario("fallback:all-down", ("x",), (), ("a", "b", "x"), 0.0, 0.0, "fallback"),
    ]
    problems = [_problem("normal", 0.0), _problem("down=x", 190.0), _problem("fallback:all-down", 0.0)]
    results = [
        SimpleNamespace(problem_key=q.key, best=SimpleNamespace(solution=np.array(k)))
        for q, k in zip(problems, ([1, 1], [0, 1], [0, 0]))
    ]
    then = {"then_levels": np.array([0, 1]), "then_after_s": np.array([300.0, 0.0])} if late else {}
    timing = {"down=x": TimedPlan(levels=np.array([1, 1]), act_after_s=np.zeros(2), hold_s=300.0, **then)}
    table = decisions_table(scen, results, problems, timing, 300.0)
    assert table.schema.equals(DECISIONS_SHEDDING_LATE if late else DECISIONS_SHEDDING_ADMISSION)
    actions = {a["workload_id"]: a for a in shedding_actions(problems[1], [0, 1], timing["down=x"])}
    assert ("then_admit" in actions["a"]) is late  # and policy.json's timed plan says so too
    return encode_parquet(table)


def test_a_state_lasting_three_horizons_ends_at_the_static_optimum_paying_one_switch() -> None:
    normal, down = _problem("normal", 0.0), _problem("down=x", 190.0)

    def view(q, d=()):
        return SimpleNamespace(problem=q, down=frozenset(d), degraded=frozenset(), key=q.scenario_key)

    # 15 minutes down (3 x the 5-minute horizon), then recovered; the checks follow 1 window late
    truth = [view(down, ["x"])] * 15 + [view(normal)] * 2
    seen = [view(normal)] + [view(down, ["x"])] * 15 + [view(normal)]
    # drain 30 s and warm-up 90 s of 600/h: 5 to shed a level, 5 + 15 to restart it
    costs = SwitchCosts(IDS, np.array([600.0, 600.0]), np.full(2, 30.0), np.full(2, 90.0), 1)
    runs = {}
    for late in (False, True):
        index = build_index("shedding", "v000001", {}, {"decisions.parquet": _bundle(late)})
        runs[late] = replay_incident(
            TimedPublishedPolicy(index, "greedy", window_min=1), truth, seen, view(normal), costs
        )
    a_levels = [int(k[0]) for k in runs[True].realized]
    # observed from window 1; 300 s later (window 6) a is shed and stays shed until the checks see recovery
    assert a_levels == [1] * 6 + [0] * 10 + [1]
    assert [int(k[0]) for k in runs[False].realized] == [1] * 17  # the plan alone rides it out to the end
    assert runs[True].switch[6] == costs.charge(np.array([1, 1]), np.array([0, 1])) == 5.0  # one drain
    assert runs[True].switch.sum() == 5.0 + 20.0  # and one restart (drain + warm-up) on the way back
    # 9 minutes without a's loss of 3 per minute, less a's 10/h for the minute the checks lag recovery,
    # pay the 25 of switching
    gain = (runs[True].values.sum() - runs[False].values.sum()) / 60.0
    assert np.isclose(gain, (9 * 180.0 - 10.0) / 60.0) and gain > runs[True].switch.sum()


def test_a_decision_waiting_for_its_long_run_step_is_not_settled() -> None:
    index = build_index("shedding", "v000001", {}, {"decisions.parquet": _bundle(True)})
    ctl = Controller(lambda down, degraded: index.decide(frozenset(down), frozenset(), "greedy"))
    assert Controller.settled(ctl.step(0.0))  # normal: the plan's shares, nothing to come
    early = ctl.step(60.0, down=("x",))
    assert {a.workload_id: a.admit for a in early.actions}["a"] == 1.0
    assert not Controller.settled(early)  # a's shed at 300 s is still to come
    late = ctl.step(360.0, down=("x",))
    assert {a.workload_id: a.admit for a in late.actions}["a"] == 0.0 and Controller.settled(late)
