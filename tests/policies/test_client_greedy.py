"""The client's runtime greedy (fallback.json): feasible, equal to the greedy solver, preferred after exact matches."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from policies.bundle.store import publish_bundle
from policies.errors import BundleVerificationError
from policies.graph import close_down_set, hard_dependents
from policies.scenarios.scenario_set import FALLBACK_KEY, NORMAL_KEY, Scenario, scenario_key
from policies.schema import DEPENDENCIES, SERVICES, WORKLOADS
from policies.shedding.fallback import FALLBACK_FILE, fallback_document
from policies.shedding.policy import (
    SHEDDING,
    GreedySheddingSolver,
    build_shedding_problems,
    decisions_table,
    is_feasible_shedding,
    shedding_actions,
)
from qres_client.bundle import encode_json, encode_parquet
from qres_client.client import GREEDY_KEY, PolicyClient
from qres_client.greedy import parse_fallback
from qres_client.index import build_index
from tests.policies.shedding_cases import shedding_tables
from tests.policies.test_client import KEY


def random_tables(seed: int, n_services: int = 14, n_workloads: int = 25):
    """Random services (3 regions), an acyclic hard/soft dependency graph and workloads.

    Capacities, demands and minimum shares vary so that some states relax the minimums,
    some have slack, and some workloads have zero demand or negative net value.
    """
    rng = np.random.default_rng(seed)
    ids = [f"s{i:02d}" for i in range(n_services)]
    regions = ids[:3]
    services = [
        {
            "service_id": s,
            "kind": "region" if s in regions else rng.choice(["internal", "saas"]),
            "tier": int(rng.integers(0, 4)),
            "capacity": float(np.round(rng.uniform(10, 80), 2)),
            "region": None,
        }
        for s in ids
    ]
    deps = []
    for i in range(3, n_services):  # edges only to lower ids: acyclic
        for j in rng.choice(i, size=int(rng.integers(0, 3)), replace=False).tolist():
            deps.append({"service_id": ids[i], "depends_on": ids[j], "hard": bool(rng.random() < 0.6)})
    wl = []
    for w in range(n_workloads):
        own = ids[int(rng.integers(3, n_services))]
        req = sorted(set(rng.choice(ids, size=int(rng.integers(0, 3)), replace=False).tolist()) - {own})
        risks = [
            {"depends_on": s, "cost_per_hour": float(np.round(rng.uniform(0, 40), 3))}
            for s in rng.choice(ids, size=int(rng.integers(0, 3)), replace=False).tolist()
        ]
        wl.append(
            {
                "workload_id": f"w{w:02d}",
                "service_id": own,
                "value_per_hour": float(np.round(rng.uniform(1, 60), 3)),
                "demand": 0.0 if rng.random() < 0.05 else float(np.round(rng.uniform(0.5, 30), 2)),
                "requires": req,
                "risks": risks,
                "min_share": float(np.round(rng.uniform(0, 0.9), 3)) if rng.random() < 0.5 else 0.0,
                "tier": int(rng.integers(0, 4)),
            }
        )
    rng.shuffle(wl)
    return (
        pa.Table.from_pylist(services, schema=SERVICES),
        pa.Table.from_pylist(deps, schema=DEPENDENCIES),
        pa.Table.from_pylist(wl, schema=WORKLOADS),
    )


def random_states(tables, seed: int, n: int):
    rng = np.random.default_rng(seed)
    names = tables[0].column("service_id").to_pylist() + ["not-a-service"]
    for _ in range(n):
        down = frozenset(rng.choice(names, size=int(rng.integers(0, 5)), replace=False).tolist())
        degraded = frozenset(rng.choice(names, size=int(rng.integers(0, 3)), replace=False).tolist()) - down
        yield down, degraded


def problem_for(tables, down, degraded, levels=4):
    """The pipeline's SheddingProblem for an observed state (the backtest builds it the same way)."""
    deps = tables[1]
    dependents = hard_dependents(zip(*(deps.column(c).to_pylist() for c in ("service_id", "depends_on", "hard"))))
    eff = close_down_set(down, dependents)
    s = Scenario(
        scenario_key(down, degraded),
        tuple(sorted(down)),
        tuple(sorted(degraded - eff)),
        tuple(sorted(eff)),
        0.0,
        0.0,
        "observed",
    )
    return build_shedding_problems(*tables, [s], levels=levels)[0]


def test_runtime_plan_is_feasible_and_equals_the_greedy_solver():
    relaxed = states = 0
    for seed in range(8):
        tables = random_tables(seed)
        levels = 2 + seed % 4
        greedy = parse_fallback(encode_json(fallback_document(*tables, levels=levels)), "test")
        for down, degraded in random_states(tables, seed, 50):
            p = problem_for(tables, down, degraded, levels)
            k, run, _ = greedy.levels_for(down, degraded)
            assert run == p.runnable.tolist()
            assert is_feasible_shedding(p, np.array(k, dtype=np.int64)), (seed, down, degraded)
            solver = GreedySheddingSolver().solve(p, seed=0, time_limit_s=1.0)
            assert k == solver.solution.tolist(), (seed, down, degraded)
            want = [(a["workload_id"], a["admit"], a["rank"]) for a in shedding_actions(p, solver.solution)]
            assert greedy.plan(down, degraded) == want
            relaxed += p.bounds.relaxed
            states += 1
    assert 0 < relaxed < states  # the random states reach the min-share relaxation, and not only it


def test_runtime_plan_never_admits_what_a_hard_dependency_blocks():
    tables = random_tables(11)
    deps = tables[1]
    upstream: dict[str, set] = {}
    for s, d, hard in zip(*(deps.column(c).to_pylist() for c in ("service_id", "depends_on", "hard"))):
        if hard:
            upstream.setdefault(s, set()).add(d)
    wl = {r["workload_id"]: r for r in tables[2].to_pylist()}
    greedy = parse_fallback(encode_json(fallback_document(*tables)), "test")
    for down, degraded in random_states(tables, 11, 80):
        for wid, admit, _ in greedy.plan(down, degraded):
            needed = close_down_set({wl[wid]["service_id"], *wl[wid]["requires"]}, upstream)
            if needed & down:
                assert admit == 0.0, (wid, down)


def _greedy_bundle(tmp_path, with_fallback: bool = True):
    """A signed bundle solved by the greedy solver alone, from the hand-made tables."""
    tables = shedding_tables()
    scenarios = [
        Scenario(NORMAL_KEY, (), (), (), 0.9, 60.0, "normal"),
        Scenario("down=pay", ("pay",), (), ("pay", "svc-a"), 0.05, 60.0, "single"),
        Scenario("down=r2", ("r2",), (), ("r2", "svc-c"), 0.04, 60.0, "single"),
        Scenario(FALLBACK_KEY, ("pay", "r1", "r2"), (), ("pay", "r1", "r2", "svc-a", "svc-c"), 0.0, 60.0, "fallback"),
    ]
    problems = build_shedding_problems(*tables, scenarios)
    results = SHEDDING.solve_each(problems, seed=1, time_limit_s=1.0, solvers=("greedy",))
    files = {"decisions.parquet": encode_parquet(decisions_table(scenarios, results, problems))}
    if with_fallback:
        files[FALLBACK_FILE] = encode_json(fallback_document(*tables))
    publish_bundle(tmp_path, "shedding", files, {}, signer=KEY.sign)
    return tables, scenarios, problems, results


def test_client_prefers_exact_matches_then_plans_the_observed_state(tmp_path):
    tables, scenarios, problems, results = _greedy_bundle(tmp_path)
    client = PolicyClient(tmp_path, public_keys=KEY.public)
    for s, _p, _r in zip(scenarios, problems, results):
        d = client.decide(down=s.down, degraded=s.degraded)
        assert d.exact and d.scenario == s.key
        # the runtime greedy gives the same plan as the greedy solver published for a scenario
        plan = client._indexes["shedding"].greedy.plan(frozenset(s.down), frozenset(s.degraded))
        assert plan == [(a.workload_id, a.admit, a.rank) for a in d.actions]
    d = client.decide(down={"r1"})  # no scenario names r1 alone
    assert d.scenario == GREEDY_KEY and not d.exact
    p = problem_for(tables, frozenset({"r1"}), frozenset())
    k = np.array([int(round(a.admit * 4)) for a in sorted(d.actions, key=lambda a: a.workload_id)])
    assert is_feasible_shedding(p, k) and k.sum() > 0  # r2 is still up: not the all-down fallback
    assert client.decide(down={"r1"}) is d  # cached per observed state
    # the old rule stays available: closest cover, else the all-down fallback
    old = PolicyClient(tmp_path, public_keys=KEY.public, unmatched="cover")
    assert old.decide(down={"r1"}).scenario == FALLBACK_KEY
    mixed = PolicyClient(tmp_path, public_keys=KEY.public, unmatched="cover-then-greedy")
    assert mixed.decide(down={"svc-a"}).scenario == "down=pay"  # a cover exists
    assert mixed.decide(down={"r1"}).scenario == GREEDY_KEY  # instead of the all-down fallback
    with pytest.raises(ValueError, match="unmatched must be one of"):
        PolicyClient(tmp_path, public_keys=KEY.public, unmatched="nearest")


def test_old_bundles_without_fallback_keep_the_old_rule(tmp_path):
    _greedy_bundle(tmp_path, with_fallback=False)
    client = PolicyClient(tmp_path, public_keys=KEY.public)
    assert client.decide(down={"r1"}).scenario == FALLBACK_KEY
    assert client.decide(down={"svc-a"}).scenario == "down=pay"


@pytest.mark.parametrize(
    "damage, message",
    [
        (b"{not json", "not readable as JSON"),
        (json.dumps({"schema_version": 2}).encode(), "schema_version must be 1"),
        (
            json.dumps(
                {
                    "schema_version": 1,
                    "levels": 4,
                    "degraded_capacity_share": 0.5,
                    "degraded_risk_share": 0.5,
                    "hard_dependents": {},
                    "regions": {"r1": 10.0},
                    "workloads": [
                        {
                            "workload_id": "w1",
                            "value_per_hour": 1.0,
                            "demand": "ten",
                            "min_share": 0.0,
                            "needs": [],
                            "risks": [],
                        }
                    ],
                }
            ).encode(),
            "w1: demand must be a finite number",
        ),
    ],
)
def test_malformed_fallback_is_refused_with_the_file_named(damage, message):
    data = encode_parquet(pq.read_table(pa.BufferReader(_decisions_only())))
    with pytest.raises(BundleVerificationError, match=message) as exc:
        build_index("shedding", "v000001", {}, {"decisions.parquet": data, FALLBACK_FILE: damage})
    assert "shedding/v000001/fallback.json" in str(exc.value)


def _decisions_only() -> bytes:
    tables = shedding_tables()
    scenarios = [
        Scenario(NORMAL_KEY, (), (), (), 1.0, 60.0, "normal"),
        Scenario(FALLBACK_KEY, ("r1",), (), ("r1",), 0.0, 60.0, "fallback"),
    ]
    problems = build_shedding_problems(*tables, scenarios)
    results = SHEDDING.solve_each(problems, seed=1, time_limit_s=1.0, solvers=("greedy",))
    return encode_parquet(decisions_table(scenarios, results, problems))


def test_fallback_document_is_deterministic_and_closes_needs():
    tables = shedding_tables()
    a = encode_json(fallback_document(*tables))
    reordered = (tables[0], tables[1], tables[2].take([3, 2, 1, 0]))
    assert a == encode_json(fallback_document(*reordered))
    doc = json.loads(a)
    assert [w["workload_id"] for w in doc["workloads"]] == ["w1", "w2", "w3", "w4"]
    # w1 runs on svc-a, which hard-depends on pay: pay's outage blocks it
    assert doc["workloads"][0]["needs"] == ["pay", "svc-a"]
    assert doc["regions"] == {"r1": 100.0, "r2": 50.0}


_CHILD = """
import json, sys
from qres_client.client import PolicyClient
c = PolicyClient(sys.argv[1])  # public keys from $QRES_PUBLIC_KEY
assert c.decide(down={"r1"}).scenario == "greedy:observed"
heavy = {"pandas", "prefect", "mlflow", "great_expectations", "ortools", "dimod", "dwave", "scipy"}
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy)))
"""


def test_runtime_greedy_pulls_in_no_pipeline_packages(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    _greedy_bundle(tmp_path)
    env = {**os.environ, "QRES_PUBLIC_KEY": KEY.public.to_json()}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path)],
        cwd=Path(__file__).resolve().parents[2],
        check=True,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(out.stdout) == []


def test_runtime_caps_follow_the_pipelines_admission_rule():
    from policies.shedding.admission import admission_caps

    lifted = kept = 0
    for seed in range(4):
        tables = random_tables(seed)
        levels = 2 + seed % 3
        greedy = parse_fallback(encode_json(fallback_document(*tables, levels=levels)), "test")
        for down, degraded in random_states(tables, seed, 30):
            p = problem_for(tables, down, degraded, levels)
            rows = greedy.capped_plan(down, degraded)
            assert [r[:3] for r in rows] == greedy.plan(down, degraded)
            k, _, _ = greedy.levels_for(down, degraded)
            caps = dict(zip(p.workload_ids, (admission_caps(p, np.array(k, dtype=np.int64)) / levels).tolist()))
            got = {w: e["admit_max"] for w, _, _, e in rows}
            assert got == caps, (seed, down, degraded)
            lifted += sum(got[w] > a for w, a, _, _ in rows)
            kept += sum(got[w] == a < 1 for w, a, _, _ in rows)
    assert lifted > 0 and kept > 0  # both rules are reached


def test_an_admission_bundle_plans_unnamed_states_with_caps_too(tmp_path):
    from policies.shedding.anticipation import TimedPlan

    tables, scenarios, problems, results = _greedy_bundle(tmp_path)
    timing = {
        s.key: TimedPlan(np.asarray(r.best.solution), np.zeros(len(p.workload_ids)), 300.0)
        for s, p, r in zip(scenarios, problems, results)
    }
    files = {
        "decisions.parquet": encode_parquet(decisions_table(scenarios, results, problems, timing, 300.0)),
        FALLBACK_FILE: encode_json(fallback_document(*tables)),
    }
    index = build_index("shedding", "v000002", {}, files)
    d = index.decide(frozenset({"r1"}), frozenset())  # no scenario names r1 alone: the runtime greedy
    assert d.scenario == GREEDY_KEY
    greedy = index.greedy.capped_plan(frozenset({"r1"}), frozenset())
    assert [(a.workload_id, a.admit, a.extras["admit_max"]) for a in d.actions] == [
        (w, admit, e["admit_max"]) for w, admit, _, e in greedy
    ]
    assert all(a.extras["admit_max"] >= a.admit for a in d.actions)
    plain = build_index(
        "shedding",
        "v000001",
        {},
        {**files, "decisions.parquet": encode_parquet(decisions_table(scenarios, results, problems))},
    )
    assert all("admit_max" not in a.extras for a in plain.decide(frozenset({"r1"}), frozenset()).actions)
