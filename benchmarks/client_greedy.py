"""Cost of the client's runtime greedy (fallback.json) next to an exact decide() and a greedy solve.

Run: .venv/bin/python benchmarks/client_greedy.py [--data data/sample] [--states 2000]
Goal (issue: runtime fallback): a plan in microseconds to sub-millisecond, so a cache miss
on an unnamed state is cheap. Side by side in one run: the first (uncached) plan per
random observed state, a cached one, and, as the reference, the pipeline's own path for
the same state (build_shedding_problems + GreedySheddingSolver, numpy).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import pyarrow.parquet as pq

from policies.graph import close_down_set, hard_dependents
from policies.scenarios.scenario_set import Scenario, scenario_key
from policies.shedding.fallback import fallback_document
from policies.shedding.policy import GreedySheddingSolver, build_shedding_problems
from qres_client.bundle import encode_json
from qres_client.greedy import parse_fallback

__all__ = ["main"]


def _us(samples: list[float]) -> str:
    s = sorted(samples)
    return f"p50 {statistics.median(s) * 1e6:8.1f} us   p99 {s[int(0.99 * (len(s) - 1))] * 1e6:8.1f} us"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/sample")
    ap.add_argument("--states", type=int, default=2000)
    args = ap.parse_args()
    tables = [pq.read_table(f"{args.data}/{n}.parquet") for n in ("services", "dependencies", "workloads")]
    doc = encode_json(fallback_document(*tables))
    greedy = parse_fallback(doc, "bench")
    names = tables[0].column("service_id").to_pylist()
    rng = random.Random(1)
    states = [frozenset(rng.sample(names, rng.randint(1, 4))) for _ in range(args.states)]
    cold, warm, cache = [], [], {}
    for s in states:
        t0 = time.perf_counter()
        plan = cache.get(s)
        if plan is None:
            cache[s] = greedy.plan(s, frozenset())
            cold.append(time.perf_counter() - t0)
        else:
            warm.append(time.perf_counter() - t0)
    deps = tables[1]
    dependents = hard_dependents(zip(*(deps.column(c).to_pylist() for c in ("service_id", "depends_on", "hard"))))
    ref = []
    for s in states[:200]:
        t0 = time.perf_counter()
        eff = close_down_set(s, dependents)
        sc = Scenario(scenario_key(s), tuple(sorted(s)), (), tuple(sorted(eff)), 0.0, 0.0, "observed")
        GreedySheddingSolver().solve(build_shedding_problems(*tables, [sc])[0], seed=0, time_limit_s=1.0)
        ref.append(time.perf_counter() - t0)
    print(f"fallback.json: {len(doc):,} bytes, {len(greedy.workload_ids)} workloads, {len(greedy.regions)} regions")
    print(f"runtime greedy, first plan of a state ({len(cold)}): {_us(cold)}")
    if warm:
        print(f"runtime greedy, cached ({len(warm)}):            {_us(warm)}")
    print(f"pipeline build + greedy solve ({len(ref)}):       {_us(ref)}")
    print(f"ratio pipeline / runtime (p50): {statistics.median(ref) / statistics.median(cold):.1f}x")


if __name__ == "__main__":
    main()
