"""policies.drill: fault timelines, the invoice stream, hysteresis, admission and the outcome arithmetic."""

from __future__ import annotations

import math

import pytest

from policies.drill.admission import KeepAll, LiveGreedy, StaticTiers, admitted
from policies.drill.load import invoice_stream, unit_draw
from policies.drill.observe import Observer, probe_state
from policies.drill.outcomes import drill_outcome, summarize_seeds
from policies.drill.system import DEFAULT_SYSTEM, parse_roles
from policies.drill.timeline import FaultPlan, Segment, active_segment, plan_faults
from qres_client.greedy import RuntimeGreedy

HEALTH = {
    "default": {"failure_rate_per_min": 0.001, "recovery_rate_per_min": 0.05},
    "dependencies": {
        "saas-invoice-validation": {"failure_rate_per_min": 0.001, "recovery_rate_per_min": 0.02},  # mean 50 min
        "region-eu-west": {"failure_rate_per_min": 0.001, "recovery_rate_per_min": 0.1},  # mean 10 min
    },
}


def test_plan_is_a_function_of_the_seed_and_follows_the_failure_model() -> None:
    down = ["saas-invoice-validation", "region-eu-west", "svc-unrelated"]
    a = plan_faults(down, [], DEFAULT_SYSTEM, HEALTH, 3, 20.0, source="what-if")
    assert a == plan_faults(down, [], DEFAULT_SYSTEM, HEALTH, 3, 20.0, source="what-if")
    assert a.down == ("region-eu-west", "saas-invoice-validation")  # only dependencies the drill has stand-ins for
    lengths = {}
    for seed in range(40):
        plan = plan_faults(down, [], DEFAULT_SYSTEM, HEALTH, seed, 20.0, source="what-if")
        assert plan.onset_s() >= 0.25 * 20.0
        assert plan.window_s >= max(s.end_s for s in plan.segments)
        for role in ("validation", "compute"):
            sustained = [s for s in plan.segments if s.role == role and s.mode != "partial"]
            assert {s.mode for s in sustained} == {"timeout" if role == "validation" else "refuse"}
            lengths.setdefault(role, []).append(sustained[-1].end_s - sustained[-1].start_s)
            assert plan.segments[-1].end_s > sustained[-1].end_s or role == "compute"  # a partial recovery follows
    # the validation SaaS recovers five times slower in the model: its outages are longer on average
    assert sum(lengths["validation"]) > 1.5 * sum(lengths["compute"])
    assert (
        len({tuple(plan_faults(down, [], DEFAULT_SYSTEM, HEALTH, s, 20.0, source="x").segments) for s in range(5)}) > 1
    )


def test_fixed_length_flaps_and_partial_recovery() -> None:
    plan = plan_faults(["saas-payments"], [], DEFAULT_SYSTEM, HEALTH, 1, 10.0, source="what-if", fixed_s=4.0)
    sustained = [s for s in plan.segments if s.mode == "timeout"][-1]
    assert sustained.end_s - sustained.start_s == pytest.approx(4.0)
    partial = [s for s in plan.segments if s.mode == "partial"]
    assert len(partial) == 1 and partial[0].start_s == sustained.end_s and partial[0].error_rate > 0
    flaps = [s for s in plan.segments if s.mode == "timeout"][:-1]
    assert all(s.end_s - s.start_s == pytest.approx(0.4) for s in flaps)
    assert active_segment(plan.segments, "payment", sustained.start_s + 0.1) == sustained
    assert active_segment(plan.segments, "validation", sustained.start_s + 0.1) is None
    assert FaultPlan.from_dict(plan.as_dict()) == plan


def test_a_scenario_without_stand_ins_is_refused_and_segments_are_checked() -> None:
    with pytest.raises(ValueError, match="none of them"):
        plan_faults(["region-ap-south"], [], DEFAULT_SYSTEM, HEALTH, 1, 10.0, source="scenario:x")
    with pytest.raises(ValueError, match="fault mode"):
        Segment("payment", 0.0, 1.0, "melt")
    with pytest.raises(ValueError, match="role=service_id"):
        parse_roles("database=pg")
    assert parse_roles("compute=region-ap-south").role_of("region-ap-south") == "compute"


def test_invoice_stream_is_deterministic_with_the_priority_mix() -> None:
    a = invoice_stream(5, 200.0, 10.0, DEFAULT_SYSTEM)
    assert a == invoice_stream(5, 200.0, 10.0, DEFAULT_SYSTEM) != invoice_stream(6, 200.0, 10.0, DEFAULT_SYSTEM)
    assert 1700 < len(a) < 2300 and all(0 <= i.at_s < 200 for i in a)
    share = {p.name: sum(i.priority == p.name for i in a) / len(a) for p in DEFAULT_SYSTEM.priorities}
    for p in DEFAULT_SYSTEM.priorities:
        assert share[p.name] == pytest.approx(p.share, abs=0.04)
    mean_value = {
        p: sum(i.value for i in a if i.priority == p) / max(1, sum(i.priority == p for i in a)) for p in share
    }
    assert mean_value["P1"] > mean_value["P2"] > mean_value["P3"] > mean_value["P4"]
    assert unit_draw("a", 1) == unit_draw("a", 1) != unit_draw("a", 2)


def test_observer_needs_agreeing_probes() -> None:
    obs = Observer(["a", "b"], windows=2)
    assert not obs.update("a", "down")  # one lost probe: no change
    assert not obs.update("a", "up")
    assert not obs.update("a", "down")
    assert obs.update("a", "down") and obs.down == {"a"}
    assert not obs.update("b", "degraded") and obs.update("b", "degraded") and obs.degraded == {"b"}
    assert probe_state(False, 0.0, 0.1) == "down" and probe_state(True, 0.2, 0.1) == "degraded"
    assert probe_state(True, 0.01, 0.1) == "up"


FALLBACK = {
    "schema_version": 1,
    "levels": 4,
    "degraded_capacity_share": 0.5,
    "degraded_risk_share": 0.5,
    "hard_dependents": {},
    "regions": {"r1": 100.0},
    "workloads": [
        {"workload_id": "w-a", "value_per_hour": 10.0, "demand": 10.0, "min_share": 0.0, "needs": ["s1"], "risks": []},
        {"workload_id": "w-b", "value_per_hour": 5.0, "demand": 10.0, "min_share": 0.0, "needs": [], "risks": []},
    ],
}


def test_admission_rules() -> None:
    wl = ("w-a", "w-b")
    assert KeepAll(wl).plan(frozenset({"s1"}), frozenset()).admit == {"w-a": 1.0, "w-b": 1.0}
    tiers = StaticTiers(wl, {"workloads": [{"workload_id": "w-a", "tier": 0}, {"workload_id": "w-b", "tier": 3}]})
    assert tiers.plan(frozenset(), frozenset()).admit == {"w-a": 1.0, "w-b": 1.0}
    assert tiers.plan(frozenset(), frozenset({"x"})).admit == {"w-a": 1.0, "w-b": 0.0}
    greedy = LiveGreedy(wl, RuntimeGreedy(FALLBACK, "test"))
    assert greedy.plan(frozenset({"s1"}), frozenset()).admit == {"w-a": 0.0, "w-b": 1.0}  # w-a cannot run
    half = greedy.plan(frozenset(), frozenset()).__class__(("k", {"w-a": 0.5}))
    ids = [f"inv-{i}" for i in range(2000)]
    share = sum(admitted(half, i, "w-a") for i in ids) / len(ids)
    assert share == pytest.approx(0.5, abs=0.04)
    assert [admitted(half, i, "w-a") for i in ids] == [admitted(half, i, "w-a") for i in ids]


def test_outcome_arithmetic_by_hand() -> None:
    plan = FaultPlan("what-if", ("saas-payments",), (), 10.0, (Segment("payment", 2.0, 6.0, "timeout"),))
    invoices = [
        {"invoice_id": "i1", "priority": "P1", "value": 100.0, "sla_s": 1.0},
        {"invoice_id": "i2", "priority": "P1", "value": 50.0, "sla_s": 1.0},
        {"invoice_id": "i3", "priority": "P3", "value": 10.0, "sla_s": 5.0},
        {"invoice_id": "i4", "priority": "P4", "value": 7.0, "sla_s": 10.0},
    ]
    normal = {"w-a": 1.0, "w-b": 1.0}
    fallback = {"w-a": 1.0, "w-b": 0.0}
    events = [
        {"t": -0.4, "kind": "observed", "down": [], "degraded": []},
        {"t": -0.4, "kind": "decision", "key": "normal", "admit": normal},
        {"t": 3.0, "kind": "observed", "down": ["saas-payments"], "degraded": []},
        {"t": 3.5, "kind": "decision", "key": "fb", "admit": fallback},
    ]
    results = {
        "i1": {"status": "processed", "latency_s": 0.2, "plan": "normal", "admitted": True, "admitted_normal": True},
        "i2": {"status": "processed", "latency_s": 1.5, "plan": "normal", "misvalidated": True},  # late and wrong
        "i3": {"status": "shed", "latency_s": 0.01, "plan": "fb", "admitted": False, "admitted_normal": True},
        # i4: no answer at all (the service never replied)
    }
    got = drill_outcome(invoices, results, events, plan, DEFAULT_SYSTEM.priorities)
    assert got["mttd_s"] == 1.0 and got["mttsf_s"] == 1.5
    assert got["invoices_processed"] == 2 and got["value_processed"] == 100.0
    assert got["value_lost"] == 57.0 and got["value_shed"] == 10.0  # i2 mis-validated + i4 unanswered
    assert got["decisions_changed"] == 1
    assert got["sla_miss"] == {"P1": 0.5, "P2": 0.0, "P3": 1.0, "P4": 1.0}
    # KL([1, 0] || [1/2, 1/2]) = ln 2, from the one invoice decided under the fallback plan
    assert got["kl_normal_fallback"] == pytest.approx(math.log(2), abs=1e-4)
    summary = summarize_seeds([got, {**got, "mttd_s": 3.0, "mttsf_s": None}])
    assert summary["mttd_s"] == {"mean": 2.0, "min": 1.0, "max": 3.0, "n": 2}
    assert summary["mttsf_s"]["n"] == 1 and summary["sla_miss"]["P1"] == 0.5
