"""Fleets beyond the classic 40 services, and spans beyond 30 days.

Health checks are the bulk, so the long-span checks stop at the event plan and the dates;
one small fleet is generated and validated whole.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from graphlib import TopologicalSorter

import numpy as np
import pytest

from policies.graph import close_down_set, hard_dependents
from policies.telemetry.sample import generate_sample
from policies.telemetry.sample.build import CLASSIC_END, default_start
from policies.telemetry.sample.events import plan_events
from policies.telemetry.sample.fleet import build_topology, fleet_kinds


def _topology(services: int, seed: int = 7):
    return build_topology(np.random.default_rng(seed).spawn(6)[0], services)


@pytest.mark.parametrize("days", [120, 240, 400])
def test_long_spans_end_in_the_past_and_plan_without_error(days):
    start = datetime.fromisoformat(default_start(days)).replace(tzinfo=UTC)
    assert start + timedelta(days=days) == datetime.fromisoformat(CLASSIC_END).replace(tzinfo=UTC)
    topo = _topology(40)
    n_min = days * 1440
    events, quiet = plan_events(np.random.default_rng(days), topo, n_min)
    kinds = [e.kind for e in events]
    assert kinds.count("region") >= round(days / 90) - 1 >= 0 and kinds.count("saas") >= 1
    assert kinds.count("single") >= 8 * days / 30 * 0.5  # grows with the span (some may not fit)
    # no two events overlap on a service
    busy: dict[str, list[tuple[int, int]]] = {}
    for e in events:
        assert 0 <= e.start_min and e.start_min + e.dur_min <= n_min
        for s in e.down | e.degraded:
            for a, b in busy.get(s, []):
                assert e.start_min >= b or e.start_min + e.dur_min <= a, (s, e)
            busy.setdefault(s, []).append((e.start_min, e.start_min + e.dur_min))
    assert not quiet & set().union(*(e.down for e in events))  # quiet services never go down


def test_short_spans_keep_the_classic_start():
    assert default_start(1) == default_start(30) == "2026-10-01"


@pytest.mark.parametrize("services", [41, 250, 1000])
def test_a_fleet_grows_every_kind_and_keeps_its_shape(services):
    topo = _topology(services)
    kinds = fleet_kinds(services)
    assert len(topo.ids) == services == sum(len(v) for v in kinds.values())
    if services >= 250:
        assert len(kinds["region"]) > 3 and len(kinds["saas"]) > 8 and len(kinds["edge"]) > 2
    assert set(fleet_kinds(40)["internal"]) <= set(kinds["internal"])  # the classic core stays
    order = TopologicalSorter({s: set() for s in topo.ids} | _graph(topo)).static_order()
    assert len(list(order)) == services  # acyclic
    for (s, d), hard in topo.deps.items():
        if hard and topo.kind[s] == "internal" and topo.kind[d] == "internal":
            assert topo.region[s] == topo.region[d]  # hard internal edges stay within a region
    homes = [topo.region[s] for s in topo.internal]
    assert min(homes.count(r) for r in topo.regions) >= 3
    # a region outage is correlated: it takes its pinned services (and their dependents) down
    dependents = hard_dependents(topo.edges())
    assert max(len(close_down_set([r], dependents)) for r in topo.regions) > 1


def test_a_larger_fleet_is_consistent_and_deterministic():
    a = generate_sample(3, days=1, services=120, workloads=150)
    b = generate_sample(3, days=1, services=120, workloads=150)
    assert all(a[k].equals(b[k]) for k in a)
    services = a["services"].to_pydict()
    assert len(services["service_id"]) == 120
    assert a["health_checks"].num_rows == 1440 * 2 * 120
    wl = a["workloads"].to_pydict()
    assert len(wl["workload_id"]) == len(set(wl["workload_id"])) == 150
    assert set(wl["service_id"]) <= set(services["service_id"])
    pool = sum(c for c, k in zip(services["capacity"], services["kind"]) if k == "region")
    assert 0.8 * pool <= sum(wl["demand"]) <= 0.9 * pool  # the shared compute pool is tight
    largest = max(c for c, k in zip(services["capacity"], services["kind"]) if k == "region")
    assert sum(wl["demand"]) > pool - largest  # losing the largest region forces shedding
    sites = set(a["sites"].column("site_id").to_pylist())
    assert set(a["standby_candidates"].column("site_id").to_pylist()) <= sites


def test_bad_fleet_sizes_are_refused():
    with pytest.raises(ValueError, match="services"):
        generate_sample(7, days=1, services=39)
    with pytest.raises(ValueError, match="workloads"):
        generate_sample(7, days=1, services=40, workloads=10_000)


def _graph(topo) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for s, d, _ in topo.edges():
        out.setdefault(s, set()).add(d)
    return out
