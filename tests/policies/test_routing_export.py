"""Routing's files from whole-scenario arrays are the per-service, per-row form's, value for value."""

from __future__ import annotations

import numpy as np
import pytest

from policies.routing.export import (
    _actions,
    envoy_weights,
    grouped_envoy_weights,
    istio_distribute,
    routing_decisions_table,
    routing_policy_document,
    routing_policy_json,
    scenario_actions,
)
from policies.routing.problem import RoutingProblem
from policies.scenarios.scenario_set import Scenario
from policies.solve.portfolio import PolicyResult, PortfolioResult, SolverInfo
from qres_client.bundle import encode_json


def _shares(rng, n: int) -> np.ndarray:
    """Shares with the cases that matter: exact ties, zeros, values under the 1e-9 cut, negatives."""
    x = rng.choice([0.0, 1e-10, 0.25, 1 / 3, 0.5, -0.1, 1.0], n) if rng.random() < 0.4 else rng.random(n)
    x[rng.random(n) < 0.2] = 0.0
    return x


@pytest.mark.parametrize("seed", range(4))
def test_grouped_weights_are_each_groups_own(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(200):
        n = int(rng.integers(1, 40))
        group = rng.integers(0, int(rng.integers(1, 12)), n)  # unsorted, some groups empty, up to 39 in one
        x = _shares(rng, n)
        got = grouped_envoy_weights(x, group)
        for g in np.unique(group):
            e = np.flatnonzero(group == g)
            assert got[e].tolist() == envoy_weights(x[e]), (x[e].tolist(), got[e].tolist())


def _old_actions(p: RoutingProblem, x) -> list[dict]:
    """The first form: a numpy call per service for its weights, a dict per endpoint, a Python sort."""
    x = np.asarray(x)
    acts = []
    for j in range(len(p.service_ids)):
        e = np.flatnonzero(p.service == j)
        for i, w in zip(e, envoy_weights(x[e])):
            acts.append(
                {
                    "endpoint_id": p.endpoint_ids[i],
                    "service_id": p.service_ids[j],
                    "locality": p.locality[i],
                    "admit": round(float(x[i]), 6) + 0.0,
                    "envoy_weight": int(w),
                    "healthy": w > 0,
                }
            )
    acts.sort(key=lambda a: (-a["admit"], a["endpoint_id"]))
    return [{**a, "rank": r} for r, a in enumerate(acts, start=1)]


def _problem(rng, services: int = 6) -> RoutingProblem:
    regions = ("r0", "r1", "rö2")  # a non-ASCII name: written as is, like encode_json
    eps, loc, svc = [], [], []
    for j in range(services):
        for r in sorted(rng.choice(regions, int(rng.integers(1, 4)), replace=False).tolist()):
            eps.append(f"s{j}@{r}")
    eps.sort()
    for e in eps:
        s, r = e.split("@")
        loc.append(r)
        svc.append(int(s[1:]))
    n, k = len(eps), 8
    return RoutingProblem(
        key="down=x",
        endpoint_ids=tuple(eps),
        service_ids=tuple(f"s{j}" for j in range(services)),
        locality=tuple(loc),
        service=np.array(svc),
        capacity=np.ones(n),
        samples=rng.uniform(10, 100, (k, n)),
    )


def test_actions_distribute_and_table_match_the_per_service_form() -> None:
    rng = np.random.default_rng(3)
    scenarios, problems, results = [], [], []
    for i in range(5):
        p = _problem(rng)
        x = _shares(rng, len(p.endpoint_ids))
        a = scenario_actions(p, x)
        assert _actions(p, a) == _old_actions(p, x)
        homes = dict.fromkeys(p.service_ids[::2], "r0")
        old_dist = []
        for j, sid in enumerate(p.service_ids):  # the first form of istio_distribute
            e = np.flatnonzero(p.service == j)
            w = envoy_weights(x[e], 100)
            if sum(w):
                to = {f"{p.locality[i]}/*": int(v) for i, v in zip(e, w) if v > 0}
                old_dist.append({"service": sid, "from": f"{homes.get(sid, '*')}/*", "to": to})
        assert istio_distribute(p, x, homes) == istio_distribute(p, x, homes, a.weights) == old_dist
        s = Scenario(f"down=s{i}", (f"s{i}",), (), (f"s{i}",), 0.1 * i, 30.0, "empirical")
        info = SolverInfo("lp", "OPTIMAL", 0.0, 0.0, 1, 0.0, {}, {})
        best = PolicyResult(s.key, x, 0.0, True, info)
        scenarios.append(s)
        problems.append(p)
        results.append(PortfolioResult(s.key, best, (best,), 0.0, "lp", (best,)))
    table = routing_decisions_table(scenarios, problems, results)
    rows = [
        {"scenario_key": s.key, "probability": s.probability, "workload_id": a["endpoint_id"], **a}
        for s, p, r in zip(scenarios, problems, results)
        for a in _old_actions(p, r.best.solution)
    ]
    assert table.num_rows == len(rows) and table.column("down").to_pylist()[0] == ["s0"]
    for name in ("scenario_key", "probability", "workload_id", "admit", "rank", "service_id", "locality"):
        assert table.column(name).to_pylist() == [r[name] for r in rows], name
    assert table.column("envoy_weight").to_pylist() == [r["envoy_weight"] for r in rows]
    assert table.column("healthy").to_pylist() == [r["healthy"] for r in rows]
    docs = [{"services": [{"service_id": "s0", "home": "r1"}, {"service_id": "s3"}]}]
    want = encode_json(routing_policy_document(scenarios, problems, results, docs))
    assert routing_policy_json(scenarios, problems, results, docs) == want
    assert routing_policy_json([], [], [], docs) == encode_json(routing_policy_document([], [], [], docs))
