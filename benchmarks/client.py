"""decide() latency and bundle load time of the runtime client on a 10,000-scenario bundle.

Run: .venv/bin/python benchmarks/client.py [--scenarios 10000] [--workloads 20] [--queries 20000]
Goals (issue 6): warm decide() p99 under 20 microseconds, load (read + verify hashes + both
signatures + index) under 100 ms. Prints the figures, the ratio to each goal and, as the
reference measured side by side in the same run, a raw ``pq.read_table`` of the same file.
Loading parses only one value per scenario; a scenario's decision is built on the first
decide() that answers with it, so the first call per scenario ("cold") is reported apart.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from policies.bundle.store import publish_bundle
from qres_client.bundle import encode_json, encode_parquet, read_bundle_bytes, verify_files
from qres_client.client import FALLBACK_KEY, PolicyClient
from qres_client.decision_table import read_parquet
from qres_client.index import build_index
from qres_client.schema import DECISIONS_SHEDDING
from qres_client.signing import SigningKey, verify_manifest_signatures

REPEATS = 5


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


CPU_MS: dict[int, float] = {}  # id(fn) -> median CPU time of the same calls (shows contention)


def median_ms(fn: Callable[[], object], repeats: int = REPEATS) -> float:
    """Median wall time of ``repeats`` calls after one untimed call (kernel and cache warm-up).

    The result is dropped after the clock stops: freeing the previous index is not loading.
    """
    fn()
    times, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        del result
    CPU_MS[id(fn)] = statistics.median(cpu) * 1000
    return statistics.median(times) * 1000


def make_queries(n: int, downs: list, services: list, rng: random.Random) -> list[frozenset]:
    """Half exact scenarios, a quarter covers (a subset of a scenario), a quarter unknown/fallback."""
    queries = []
    multi = [d for d in downs[:2000] if len(d) > 1]
    for i in range(n):
        r = i % 4
        if r < 2:
            queries.append(frozenset(rng.choice(downs)))
        elif r == 2:
            queries.append(frozenset(rng.choice(multi)[:1]))
        else:
            queries.append(frozenset(rng.sample(services, 4)))
    return queries


def time_calls_us(decide: Callable, queries: list[frozenset]) -> list[float]:
    clock, lat = time.perf_counter_ns, []
    for q in queries:
        t0 = clock()
        decide("shedding", q)
        lat.append(clock() - t0)
    lat.sort()
    return [x / 1000 for x in lat]


def pct(sorted_us: list[float], q: float) -> float:
    return sorted_us[min(len(sorted_us) - 1, int(len(sorted_us) * q))]


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
        b = publish_bundle(
            store,
            "shedding",
            {"decisions.parquet": encode_parquet(table), "policy.json": encode_json({"n": args.scenarios})},
            {},
            signer=key.sign,
        )
        size_kb = sum(p.stat().st_size for p in b.path.iterdir()) / 1024
        parquet_path = b.path / "decisions.parquet"
        data = parquet_path.read_bytes()
        manifest_bytes, files = read_bundle_bytes(b.path)
        manifest = verify_files(manifest_bytes, files, "bench")

        def load() -> PolicyClient:
            return PolicyClient(store, public_keys=key.public)

        load_ms = median_ms(load)
        load_cpu_ms = CPU_MS[id(load)]
        parts = {
            "read bundle files": median_ms(lambda: read_bundle_bytes(b.path)),
            "sha256 of every file": median_ms(lambda: verify_files(manifest_bytes, files, "bench")),
            "both signatures": median_ms(lambda: verify_manifest_signatures(manifest, key.public, "bench")),
            "build index": median_ms(lambda: build_index("shedding", b.version, manifest, files)),
        }
        raw_ms = median_ms(lambda: pq.read_table(parquet_path))
        reads = {
            f"dictionaries={d} pre_buffer={p} use_threads={t}": median_ms(
                lambda d=d, p=p, t=t: read_parquet(data, dictionaries=d, pre_buffer=p, use_threads=t)
            )
            for d in (True, False)
            for p in (False, True)
            for t in (False, True)
        }
        client = PolicyClient(store, public_keys=key.public)
    # Cold: the first call for a scenario (its decision is built then), on the fresh client.
    cold = time_calls_us(client.decide, [frozenset(d) for d in downs[: args.queries // 4]])
    queries = make_queries(args.queries, downs, services, rng)
    time_calls_us(client.decide, queries)  # warm-up pass: builds every scenario the queries reach
    warm = time_calls_us(client.decide, queries)
    p50, p99 = pct(warm, 0.5), pct(warm, 0.99)

    print(
        f"bundle: {args.scenarios:,} scenarios x {args.workloads} workloads = {table.num_rows:,} rows, "
        f"{size_kb:,.0f} KiB, signed (Ed25519 + ML-DSA-65)"
    )
    print(
        f"load (read + verify sha256 + both signatures + build index), median of {REPEATS}: {load_ms:.1f} ms "
        f"(goal < 100 ms: {load_ms / 100:.2f}x of goal; {load_ms / raw_ms:.2f}x a raw pq.read_table "
        f"of the same file, {raw_ms:.1f} ms); CPU time {load_cpu_ms:.1f} ms"
    )
    for name, ms in parts.items():
        print(f"  {name:<22} {ms:7.1f} ms")
    print(
        "reading the verified bytes (qres_client.index.read_parquet), median of "
        f"{REPEATS}, vs raw pq.read_table {raw_ms:.1f} ms:"
    )
    for name, ms in reads.items():
        print(f"  {name:<50} {ms:6.1f} ms ({ms / raw_ms:.2f}x)")
    print(
        f"decide() warm, {len(warm):,} queries (50% exact, 25% cover, 25% fallback): p50 {p50:.2f} us, "
        f"p99 {p99:.2f} us, max {warm[-1]:.1f} us (goal p99 < 20 us: {p99 / 20:.2f}x of goal)"
    )
    print(
        f"decide() cold (first call for a scenario: builds its actions), {len(cold):,} scenarios: "
        f"p50 {pct(cold, 0.5):.2f} us, p99 {pct(cold, 0.99):.2f} us"
    )


if __name__ == "__main__":
    main()
