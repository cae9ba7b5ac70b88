"""The failure model on 10M health-check rows against a raw pyarrow scan of the same rows.

    .venv/bin/python benchmarks/model.py [--rows 10000000] [--repeat 3]

Writes synthetic checks (40 services, 2 probes, one check per minute, outages and flapping
probes) to one Parquet file in a temporary folder, then times, side by side in one run (best of
``--repeat``):

- scan:  ``pq.read_table`` + group by (service_id, status) with a count: the floor any reader pays;
- model: ``pq.read_table`` + ``fit_failure_model`` (windowing, probe agreement, gaps, hysteresis,
  per-dependency posteriors, co-failure): what the nightly flow pays.

and prints the ratio model / scan (goal: 3 or less), plus the scenario step for reference.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policies.model.failure_model import fit_failure_model
from policies.scenarios.scenario_set import build_scenarios
from policies.schema import DEPENDENCIES, HEALTH_CHECKS, SERVICES

N_SERVICES, N_PROBES = 40, 2


def write_checks(path: Path, rows: int, seed: int = 1) -> tuple[pa.Table, pa.Table]:
    """Synthetic checks (vectorized), written to ``path``; returns services and dependencies."""
    rng = np.random.default_rng(seed)
    minutes = rows // (N_SERVICES * N_PROBES)
    down = np.zeros((minutes, N_SERVICES), dtype=bool)
    starts = rng.integers(0, minutes, size=N_SERVICES * minutes // 2880)  # ~ one outage per 2 days each
    cols = rng.integers(0, N_SERVICES, size=starts.size)
    lengths = rng.integers(5, 120, size=starts.size)
    delta = np.zeros((minutes + 121, N_SERVICES), dtype=np.int32)
    np.add.at(delta, (starts, cols), 1)
    np.add.at(delta, (starts + lengths, cols), -1)
    down = np.cumsum(delta, axis=0)[:minutes] > 0
    status = np.repeat(down[:, :, None], N_PROBES, axis=2).astype(np.int8) * 2
    status[rng.random(status.shape) < 0.0005] = 2  # flapping probes
    m, s, p = np.meshgrid(np.arange(minutes), np.arange(N_SERVICES), np.arange(N_PROBES), indexing="ij")
    names = [f"svc-{i:02d}" for i in range(N_SERVICES)]
    n = m.size
    table = pa.table(
        {
            "ts": pa.array(1_767_225_600_000 + m.ravel() * 60_000 + p.ravel() * 20_000, pa.timestamp("ms", tz="UTC")),
            "service_id": pa.DictionaryArray.from_arrays(s.ravel().astype(np.int32), names).cast(pa.string()),
            "probe": pa.DictionaryArray.from_arrays(p.ravel().astype(np.int32), ["p0", "p1"]).cast(pa.string()),
            "status": pa.DictionaryArray.from_arrays(status.ravel().astype(np.int32), ["up", "degraded", "down"]).cast(
                pa.string()
            ),
            "latency_ms": rng.gamma(2.0, 40.0, n),
            "error_rate": np.zeros(n),
            "http_code": np.full(n, 200, dtype=np.int16),
        }
    ).cast(HEALTH_CHECKS)
    pq.write_table(table, path, compression="zstd")
    services = pa.Table.from_pylist(
        [{"service_id": x, "kind": "saas", "tier": 1, "capacity": 1.0, "region": None} for x in names], schema=SERVICES
    )
    deps = pa.Table.from_pylist(
        [{"service_id": names[i], "depends_on": names[i + 1], "hard": i % 3 == 0} for i in range(0, N_SERVICES - 1, 2)],
        schema=DEPENDENCIES,
    )
    return services, deps


def best_of(repeat: int, fn) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "health_checks.parquet"
        services, deps = write_checks(path, args.rows)
        rows = pq.read_metadata(path).num_rows

        def scan():
            return pq.read_table(path).group_by(["service_id", "status"]).aggregate([([], "count_all")])

        def model():
            return fit_failure_model(services, deps, pq.read_table(path))

        # Interleave so both see the same machine load.
        t_scan, t_model = float("inf"), float("inf")
        for _ in range(args.repeat):
            t_scan = min(t_scan, best_of(1, scan)[0])
            dt, fitted = best_of(1, model)
            t_model = min(t_model, dt)
        t_scen, sset = best_of(1, lambda: build_scenarios(fitted, deps, services=services, sample_max=8, seed=7))
    print(f"rows                      {rows:,}")
    print(f"raw pyarrow scan          {t_scan:.2f} s   (read + group by service, status)")
    print(f"failure model             {t_model:.2f} s   (read + fit_failure_model)")
    print(f"ratio model / scan        {t_model / t_scan:.2f}   (goal <= 3)")
    print(f"scenarios (reference)     {t_scen:.2f} s   ({len(sset.scenarios)} scenarios)")
    print(
        f"flap filter               removed {fitted.info['transitions_removed']:,} of "
        f"{fitted.info['raw_transitions']:,} raw transitions"
    )


if __name__ == "__main__":
    main()
