"""decide() latency and bundle load time of the runtime client on a 10,000-scenario bundle.

Run: .venv/bin/python benchmarks/client.py [--scenarios 10000] [--workloads 20] [--queries 20000]
Goals (issue 6): decide() p99 under 20 microseconds, load (verify hashes + both signatures +
index) under 100 ms. Prints the figures and the ratio to each goal, measured in one run.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from policies.bundle import encode_json, encode_parquet, publish_bundle
from policies.client import FALLBACK_KEY, PolicyClient
from policies.schema import DECISIONS_SHEDDING
from policies.signing import SigningKey


def build_table(n_scenarios: int, n_workloads: int, n_services: int, rng: random.Random) -> pa.Table:
    services = [f"svc-{i:03d}" for i in range(n_services)]
    seen, keys = set(), []
    while len(keys) < n_scenarios - 2:
        down = tuple(sorted(rng.sample(services, rng.choice([1, 1, 2, 2, 3]))))
        if down not in seen:
            seen.add(down)
            keys.append(down)
    cols = {f.name: [] for f in DECISIONS_SHEDDING}
    plans = [("normal", ())] + [("down=" + ",".join(d), d) for d in keys] + [(FALLBACK_KEY, tuple(services))]
    for key, down in plans:
        for w in range(n_workloads):
            cols["scenario_key"].append(key)
            cols["down"].append(list(down))
            cols["degraded"].append([])
            cols["effective_down"].append(list(down))
            cols["probability"].append(1.0 / n_scenarios)
            cols["workload_id"].append(f"w{w:02d}")
            cols["admit"].append(round(rng.random(), 2))
            cols["rank"].append(w + 1)
    return pa.table(cols, schema=DECISIONS_SHEDDING), [d for _, d in plans[1:-1]], services


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", type=int, default=10_000)
    ap.add_argument("--workloads", type=int, default=20)
    ap.add_argument("--services", type=int, default=300)
    ap.add_argument("--queries", type=int, default=20_000)
    args = ap.parse_args()
    rng = random.Random(11)
    table, downs, services = build_table(args.scenarios, args.workloads, args.services, rng)
    key = SigningKey.generate()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp)
        b = publish_bundle(store, "shedding", {"decisions.parquet": encode_parquet(table),
                                                "policy.json": encode_json({"n": args.scenarios})}, {},
                           signer=key.sign)
        size_kb = sum(p.stat().st_size for p in b.path.iterdir()) / 1024
        loads = []
        for _ in range(5):
            t0 = time.perf_counter()
            client = PolicyClient(store, public_keys=key.public)
            loads.append(time.perf_counter() - t0)
    # Queries: half exact scenarios, a quarter covers (a subset of a scenario), a quarter unknown/fallback.
    queries = []
    for i in range(args.queries):
        r = i % 4
        if r < 2:
            queries.append(frozenset(rng.choice(downs)))
        elif r == 2:
            d = rng.choice([d for d in downs[:2000] if len(d) > 1])
            queries.append(frozenset(d[:1]))
        else:
            queries.append(frozenset(rng.sample(services, 4)))
    decide, clock = client.decide, time.perf_counter_ns
    for q in queries[:2000]:  # warm up
        decide("shedding", q)
    lat = []
    for q in queries:
        t0 = clock()
        decide("shedding", q)
        lat.append(clock() - t0)
    lat.sort()
    p50, p99 = lat[len(lat) // 2] / 1000, lat[int(len(lat) * 0.99)] / 1000
    load_ms = statistics.median(loads) * 1000
    print(f"bundle: {args.scenarios:,} scenarios x {args.workloads} workloads = {table.num_rows:,} rows, "
          f"{size_kb:,.0f} KiB, signed (Ed25519 + ML-DSA-65)")
    print(f"load (verify sha256 + both signatures + build index), median of 5: {load_ms:.1f} ms "
          f"(goal < 100 ms: {load_ms / 100:.2f}x of goal)")
    print(f"decide() over {len(lat):,} queries (50% exact, 25% cover, 25% fallback): "
          f"p50 {p50:.2f} us, p99 {p99:.2f} us, max {lat[-1] / 1000:.1f} us (goal p99 < 20 us: {p99 / 20:.2f}x of goal)")


if __name__ == "__main__":
    main()
