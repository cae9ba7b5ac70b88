"""Scenario sources beyond the empirical patterns: joint-model samples, what-ifs, capacity left,
and what they change for a runtime client that observes two dependencies down at once."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from policies.model.failure_model import fit_failure_model
from policies.model.joint import fit_ising
from policies.scenarios.scenario_set import FALLBACK_KEY, build_scenarios
from policies.schema import DEPENDENCIES, SERVICES, WORKLOADS
from policies.shedding.policy import SHEDDING, build_shedding_problems, decisions_table
from qres_client.bundle import encode_parquet
from qres_client.index import build_index
from tests.policies.synthetic_failures import checks_table

NAMES = ["app", "region-a", "saas-x", "saas-y", "saas-z"]


@pytest.fixture(scope="module")
def tables():
    """One day: saas-x and saas-y each fail twice, never together; saas-z fails with saas-x once."""
    down = np.zeros((1440, len(NAMES)), dtype=bool)
    col = {n: i for i, n in enumerate(NAMES)}
    for name, a, b in [
        ("saas-x", 100, 160),
        ("saas-x", 400, 460),
        ("saas-y", 250, 300),
        ("saas-y", 600, 650),
        ("saas-z", 400, 430),
        ("saas-z", 1000, 1010),
    ]:
        down[a:b, col[name]] = True
    services = pa.Table.from_pylist(
        [
            {"service_id": "app", "kind": "internal", "tier": 0, "capacity": 10.0, "region": "region-a"},
            {"service_id": "region-a", "kind": "region", "tier": 0, "capacity": 100.0, "region": None},
        ]
        + [
            {"service_id": s, "kind": "saas", "tier": 1, "capacity": 1.0, "region": None}
            for s in ("saas-x", "saas-y", "saas-z")
        ],
        schema=SERVICES,
    )
    deps = pa.Table.from_pylist(
        [{"service_id": "app", "depends_on": "region-a", "hard": True}]
        + [{"service_id": "app", "depends_on": s, "hard": False} for s in ("saas-x", "saas-y", "saas-z")],
        schema=DEPENDENCIES,
    )
    workloads = pa.Table.from_pylist(
        [
            {
                "workload_id": f"w{i}",
                "service_id": "app",
                "value_per_hour": 10.0 * (i + 1),
                "demand": 30.0,
                "requires": [],
                "risks": [{"depends_on": s, "cost_per_hour": 4.0 * (i + 1)}],
                "min_share": 0.0,
                "tier": 1,
            }
            for i, s in enumerate(("saas-x", "saas-y", "saas-z"))
        ],
        schema=WORKLOADS,
    )
    return {
        "services": services,
        "dependencies": deps,
        "workloads": workloads,
        "health_checks": checks_table(down, NAMES),
    }


@pytest.fixture(scope="module")
def model(tables):
    return fit_failure_model(tables["services"], tables["dependencies"], tables["health_checks"])


def scenario_set(model, tables, **kw):
    return build_scenarios(model, tables["dependencies"], services=tables["services"], seed=3, **kw)


def decide(tables, sset, down):
    problems = build_shedding_problems(tables["services"], tables["dependencies"], tables["workloads"], sset.scenarios)
    results = SHEDDING.solve_each(problems, seed=1, time_limit_s=1.0, solvers=("greedy",))
    files = {"decisions.parquet": encode_parquet(decisions_table(sset.scenarios, results, problems))}
    return build_index("shedding", "v1", {}, files).decide(frozenset(down), frozenset())


def test_two_down_falls_to_all_down_without_samples_and_to_a_sampled_cover_with_them(model, tables):
    observed = {"saas-x", "saas-y"}  # never seen together
    plain = scenario_set(model, tables, sample_max=0)
    assert all(s.source != "sampled" for s in plain.scenarios)
    assert decide(tables, plain, observed).scenario == FALLBACK_KEY  # admits nothing

    sampled = scenario_set(model, tables, sample_max=8, sample_min_probability=0.0)
    by_key = {s.key: s for s in sampled.scenarios}
    assert "down=saas-x,saas-y" in by_key
    s = by_key["down=saas-x,saas-y"]
    assert s.source == "sampled" and 0 < s.probability < min(
        by_key["down=saas-x"].probability, by_key["down=saas-y"].probability
    )
    # The state ends when the first of the two recovers: 1 / (mu_x + mu_y).
    mu = dict(zip(model.per_dependency["service_id"], model.per_dependency["recovery_rate_per_min"]))
    assert s.expected_duration_min == pytest.approx(1 / (mu["saas-x"] + mu["saas-y"]))
    decision = decide(tables, sampled, observed)
    assert decision.scenario == "down=saas-x,saas-y" and decision.exact
    assert any(a.admit > 0 for a in decision.actions)  # better than the fallback's admit-nothing
    assert sampled.info["n_sampled_added"] >= 1 and sampled.info["by_source"]["sampled"] >= 1
    assert sampled.covered_mass == plain.covered_mass  # samples never count as covered empirical mass


def test_sampling_is_deterministic_per_seed(model, tables):
    a = scenario_set(model, tables, sample_max=8, sample_min_probability=0.0)
    b = scenario_set(model, tables, sample_max=8, sample_min_probability=0.0)
    assert a.scenarios == b.scenarios


def test_what_if_scenarios_are_added_with_their_name(model, tables):
    sset = scenario_set(
        model,
        tables,
        what_if=[
            {"name": "region a down 4h", "down": ["region-a"], "duration_min": 240},
            {"name": "x and z slow", "degraded": ["saas-x", "saas-z"], "probability": 0.001},
        ],
    )
    by_key = {s.key: s for s in sset.scenarios}
    # region-a is depended on, so its single-outage scenario exists already: not duplicated, but
    # merged, so the what-if's name and its longer duration are not lost.
    plain = {s.key: s for s in scenario_set(model, tables).scenarios}["down=region-a"]
    merged = by_key["down=region-a"]
    assert [s.key for s in sset.scenarios].count("down=region-a") == 1
    assert merged.source == "single+what-if:region a down 4h"
    assert merged.expected_duration_min == max(240.0, plain.expected_duration_min)
    assert merged.probability == plain.probability  # the what-if gave none (0), the larger one stays
    slow = by_key["degraded=saas-x,saas-z"]
    assert slow.source == "what-if:x and z slow" and slow.probability == 0.001
    assert slow.expected_duration_min == 60.0 and sset.info["by_source"]["what-if"] == 1
    with pytest.raises(ValueError, match="unknown service"):
        scenario_set(model, tables, what_if=[{"name": "typo", "down": ["saas-q"]}])


def test_capacity_left_per_resource(model, tables):
    by_key = {s.key: s for s in scenario_set(model, tables).scenarios}
    assert by_key["normal"].capacity_left == (("region-a", 100.0),)
    assert by_key["down=region-a"].capacity_left == (("region-a", 0.0),)
    assert by_key[FALLBACK_KEY].capacity_left == (("region-a", 0.0),)


def test_ising_recovers_a_positive_coupling():
    """Pseudo-likelihood on patterns where a and b fail together far more than by chance."""
    x = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=float)
    w = np.array([10_000, 50, 50, 100, 60], dtype=float)
    m = fit_ising(("a", "b", "c"), x, w, l2=0.1)
    assert m.J[0, 1] > 3 and abs(m.J[0, 2]) < 1.5 and np.allclose(m.J, m.J.T)
    # log P relative to all-up matches the empirical ratios roughly.
    p = np.exp(m.log_probability(x))
    assert p[0] == pytest.approx(10_000 / w.sum())
    assert p[3] == pytest.approx(100 / w.sum(), rel=0.3)


def test_ising_couples_only_pairs_seen_down_together():
    """Pairwise work only where pairs can co-fail: a pair never down together is independent (J = 0)."""
    x = np.array([[0, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]], dtype=float)
    w = np.array([10_000, 50, 50, 100, 60, 5], dtype=float)
    m = fit_ising(("a", "b", "c", "d"), x, w, l2=0.1)
    assert m.J[0, 1] > 3 and m.J[2, 3] != 0.0
    together = {(0, 1), (1, 0), (2, 3), (3, 2)}
    assert all(m.J[i, j] == 0.0 for i in range(4) for j in range(4) if (i, j) not in together)
