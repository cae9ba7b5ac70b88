"""Shared shedding test inputs: small random problems and a hand-made set of tables and scenarios."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from policies.scenarios.scenario_set import Scenario
from policies.schema import DEPENDENCIES, SERVICES, WORKLOADS
from policies.shedding.problem import SheddingProblem, is_feasible_shedding, shedding_objective

FAMILY = {"objective": shedding_objective, "is_feasible": is_feasible_shedding}


def make_problem(seed: int, n: int = 6, *, flavour: str = "mixed", levels: int = 4) -> SheddingProblem:
    """Small random instance; flavours force relaxation, exact decimal fits, or plain data."""
    rng = np.random.default_rng(seed)
    v = rng.uniform(5, 50, n)
    r = np.where(rng.random(n) < 0.3, rng.uniform(0, 60, n), 0.0)  # some nets go negative
    d = np.round(rng.uniform(0.1, 5.0, n), 1)
    run = rng.random(n) > 0.15
    m = np.where(rng.random(n) < 0.4, rng.uniform(0, 0.7, n), 0.0)
    cap = float(rng.uniform(0.2, 0.8) * d.sum())
    if flavour == "relax":
        m = rng.uniform(0.5, 1.0, n)
        cap = float(rng.uniform(0.1, 0.4) * d.sum())
    elif flavour == "tight":  # capacity is exactly some admission's demand, in decimal
        k = rng.integers(0, levels + 1, n)
        cap = float(np.round(np.sum(k * d) / levels, 3))
        m[:] = 0.0
    ids = tuple(f"w{i}" for i in range(n))
    return SheddingProblem(f"s{seed}-{flavour}", ids, v, r, d, m, run, cap, levels)


def shedding_tables():
    services = pa.Table.from_pylist(
        [
            {"service_id": "r1", "kind": "region", "tier": 0, "capacity": 100.0, "region": None},
            {"service_id": "r2", "kind": "region", "tier": 0, "capacity": 50.0, "region": None},
            {"service_id": "pay", "kind": "saas", "tier": 0, "capacity": 0.0, "region": None},
            {"service_id": "svc-a", "kind": "internal", "tier": 1, "capacity": 7.0, "region": "r1"},
            {"service_id": "svc-b", "kind": "internal", "tier": 1, "capacity": 7.0, "region": "r1"},
            {"service_id": "svc-c", "kind": "internal", "tier": 2, "capacity": 7.0, "region": "r2"},
        ],
        schema=SERVICES,
    )
    dependencies = pa.Table.from_pylist(
        [
            {"service_id": "svc-a", "depends_on": "pay", "hard": True},
            {"service_id": "svc-b", "depends_on": "pay", "hard": False},
            {"service_id": "svc-c", "depends_on": "r2", "hard": True},
        ],
        schema=DEPENDENCIES,
    )
    wl = [  # deliberately not in id order
        {
            "workload_id": "w4",
            "service_id": "svc-c",
            "value_per_hour": 40.0,
            "demand": 10.0,
            "requires": ["r2"],
            "risks": [{"depends_on": "pay", "cost_per_hour": 4.0}, {"depends_on": "r1", "cost_per_hour": 6.0}],
            "min_share": 0.0,
            "tier": 2,
        },
        {
            "workload_id": "w1",
            "service_id": "svc-a",
            "value_per_hour": 100.0,
            "demand": 30.0,
            "requires": [],
            "risks": [],
            "min_share": 0.5,
            "tier": 0,
        },
        {
            "workload_id": "w3",
            "service_id": "svc-b",
            "value_per_hour": 20.0,
            "demand": 20.0,
            "requires": [],
            "risks": [{"depends_on": "pay", "cost_per_hour": 10.0}],
            "min_share": 0.0,
            "tier": 1,
        },
        {
            "workload_id": "w2",
            "service_id": "svc-b",
            "value_per_hour": 60.0,
            "demand": 40.0,
            "requires": ["pay"],
            "risks": [],
            "min_share": 0.25,
            "tier": 1,
        },
    ]
    return services, dependencies, pa.Table.from_pylist(wl, schema=WORKLOADS)


def make_scenario(key, down=(), degraded=(), eff=None, p=0.1):
    return Scenario(key, tuple(down), tuple(degraded), tuple(eff if eff is not None else down), p, 30.0, "single")


SCENARIOS = [
    make_scenario("normal", p=0.7),
    make_scenario("down=pay", ["pay"], eff=["pay", "svc-a"]),
    make_scenario("down=r2", ["r2"]),  # effective_down left unclosed on purpose: the builder closes it
    make_scenario("degraded=pay,r1", degraded=["pay", "r1"]),
]
