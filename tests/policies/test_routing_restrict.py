"""Routing's LP restricted to the services a scenario touches, spliced with normal's answer, is the full LP's optimum."""

from __future__ import annotations

import numpy as np
import pytest

from policies.model.failure_model import fit_failure_model
from policies.routing.policy import ROUTING, latency_pool, routing_documents
from policies.routing.problem import is_feasible_routing, routing_objective
from policies.routing.restrict import block_objectives, splice
from policies.scenarios.scenario_set import NORMAL_KEY, build_scenarios
from policies.telemetry.ingest import conform_tables, load_telemetry

PARAMS = {"seed": 5, "time_limit_s": 5.0, "solvers": ("lp",)}


@pytest.fixture(scope="module")
def fleet(small_sample):
    tables = conform_tables(load_telemetry(str(small_sample)).tables)
    model = fit_failure_model(tables["services"], tables["dependencies"], tables["health_checks"])
    # every single outage and a what-if region outage: services down, pinned and active-active ones touched
    what_if = [{"name": "region down", "down": ["region-eu-west"]}, {"name": "eu slow", "degraded": ["region-eu-west"]}]
    sset = build_scenarios(model, tables["dependencies"], services=tables["services"], what_if=what_if)
    pool = latency_pool(tables["health_checks"])
    args = (tables["services"], tables["dependencies"], tables["workloads"], None, sset.scenarios)
    full = routing_documents(*args, seed=5, pool=pool, num_samples=16)
    part = routing_documents(*args, seed=5, pool=pool, num_samples=16, restrict=True)
    return sset.scenarios, full, part


def test_restricted_lp_spliced_with_normal_equals_the_full_lp(fleet) -> None:
    scenarios, full_docs, part_docs = fleet
    full = [ROUTING.from_dict(d) for d in full_docs]
    at = [s.key for s in scenarios].index(NORMAL_KEY)
    assert part_docs[at]["services"] == full_docs[at]["services"]  # normal is solved whole
    normal = full[at]
    normal_result = ROUTING.solve(normal, **PARAMS)
    blocks = block_objectives(normal, normal_result.best.solution)
    assert blocks.sum() == pytest.approx(normal_result.best.objective, rel=1e-9)
    sizes = []
    for s, whole, doc in zip(scenarios, full, part_docs, strict=True):
        part = ROUTING.from_dict(doc) if doc["services"] else None
        sizes.append(0 if part is None else len(part.service_ids))
        got_problem, got = splice(
            normal, normal_result, blocks, s.key, part, None if part is None else ROUTING.solve(part, **PARAMS)
        )
        # the spliced problem is the full one: untouched services have normal's samples and capacities
        assert got_problem.endpoint_ids == whole.endpoint_ids
        np.testing.assert_array_equal(got_problem.capacity, whole.capacity)
        np.testing.assert_array_equal(got_problem.samples, whole.samples)
        x = got.best.solution
        assert got.problem_key == s.key and is_feasible_routing(whole, x)
        assert got.best.objective == pytest.approx(routing_objective(whole, x), rel=1e-9)
        optimum = ROUTING.solve(whole, **PARAMS).best.objective
        assert routing_objective(whole, x) == pytest.approx(optimum, rel=1e-6, abs=1e-6), s.key
    n = len(normal.service_ids)
    assert max(sizes) == n > 0  # the all-down fallback touches every service...
    assert 0 in sizes and min(s for s in sizes if s) < n  # ...a single outage only a few, some none
