"""The normal state's order weighs the region outages the history never showed, not only those it did."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from policies.scenarios.scenario_set import Scenario
from policies.shedding.anticipation import TimedPlan
from policies.shedding.export import decisions_table
from policies.shedding.policy import build_shedding_problems, unseen_outages
from policies.shedding.problem import SheddingProblem
from policies.telemetry.ingest import conform_tables, load_telemetry

IDS = ("a", "b")


def _p(key, capacity, risk=(0.0, 0.0)):
    return SheddingProblem(key, IDS, np.array([10.0, 9.0]), np.array(risk), np.array([5.0, 5.0]), np.zeros(2),
                           np.ones(2, bool), capacity, 1)  # fmt: skip


def _normal_order(unseen) -> list[str]:
    scen = [
        Scenario("normal", (), (), (), 0.6, 0.0, "normal"),
        Scenario("down=x", ("x",), (), ("x",), 0.1, 30.0, "empirical"),
        Scenario("fallback:all-down", ("x",), (), ("a", "b", "x"), 0.0, 0.0, "fallback"),
    ]
    # if x fails, a carries a risk of 3 (net 7): b (9) is the one to keep in the one zone left
    problems = [_p("normal", 10.0), _p("down=x", 5.0, risk=(3.0, 0.0)), _p("fallback:all-down", 0.0)]
    plans = [[1, 1], [0, 1], [0, 0]]
    results = [
        SimpleNamespace(problem_key=p.key, best=SimpleNamespace(solution=np.array(k))) for p, k in zip(problems, plans)
    ]
    timing = {"down=x": TimedPlan(np.array([0, 1]), np.zeros(2), 300.0)}
    table = decisions_table(scen, results, problems, timing, 300.0, unseen)
    return [
        r["workload_id"] for r in sorted(table.to_pylist(), key=lambda r: r["rank"]) if r["scenario_key"] == "normal"
    ]


def test_a_likely_unseen_outage_keeps_the_density_order_a_rare_one_does_not() -> None:
    # by hand, serving (a, b) capped (1, 1) at onset: b first keeps .1 * 9 + q * 9, a first .1 * 7 + q * 10
    assert _normal_order(()) == ["b", "a"]  # the seen outage alone: b first
    zone = _p("down=r", 5.0)  # a zone outage the history never showed: density (a) first is right there
    assert _normal_order([(0.05, zone)]) == ["b", "a"]  # 1.35 against 1.2
    assert _normal_order([(0.3, zone)]) == ["a", "b"]  # 3.6 against 3.7


def test_every_region_outage_no_scenario_names_weighs_half_the_rarest_seen_pattern(small_sample) -> None:
    tables = conform_tables(load_telemetry(str(small_sample)).tables)
    services = tables["services"].to_pylist()
    regions = sorted(s["service_id"] for s in services if s["kind"] == "region")
    assert len(regions) >= 2
    seen = [
        Scenario("normal", (), (), (), 0.9, 0.0, "normal"),
        Scenario(f"down={regions[0]}", (regions[0],), (), (regions[0],), 0.02, 30.0, "empirical"),
        Scenario("down=zz", ("zz",), (), ("zz",), 0.004, 30.0, "sampled"),  # not a pattern the history showed
    ]
    got = unseen_outages(tables, seen, levels=4)
    assert [q.key for _, q in got] == [f"down={r}" for r in regions[1:]]
    assert all(p == pytest.approx(0.01) for p, _ in got)
    normal = build_shedding_problems(
        tables["services"], tables["dependencies"], tables["workloads"], seen[:1], levels=4
    )[0]
    assert all(q.capacity < normal.capacity for _, q in got)  # a zone's capacity is gone
    assert unseen_outages(tables, seen[:1], levels=4) == ()  # nothing seen: no base rate to weigh by
