"""Import throughput from a real Prometheus (rows/s) beside reading the same rows from Parquet.

Run: .venv/bin/python benchmarks/prometheus_import.py [--history manticore] [--step 60] [--repeats 5]
Needs ``prometheus`` and ``promtool`` (Debian's package; ``.ci/run`` installs it). The server
gets the real Upptime history as blackbox-exporter series (the test suite's recipe:
tests/policies/importers/prom_server.py) and runs on loopback; the import is
``fetch_prometheus`` (chunked range queries, JSON decoding, resampling at ``step``: one health
check per point) plus writing the tables, the Parquet side is ``pq.read_table`` of the written
health checks. Median and min of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from policies.telemetry.importers.prometheus import PrometheusSpec, fetch_prometheus  # noqa: E402 -- after sys.path
from policies.telemetry.importers.pull import import_prometheus  # noqa: E402 -- after sys.path
from policies.telemetry.importers.upptime_git import read_upptime_events  # noqa: E402 -- after sys.path
from tests.policies.importers import prom_server as ps  # noqa: E402 -- after sys.path


def _timed(fn, repeats: int) -> tuple[float, float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--history", default="manticore")
    ap.add_argument("--step", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    history = ROOT.parent / "shared" / "realdata" / "upptime" / args.history / "commits.jsonl"
    events = read_upptime_events(history)
    res = args.step * 1000 if args.step % 60 == 0 else 60_000
    since = min(t for t, _, _ in events) // res * res
    until = (max(t for t, _, _ in events) // res + 2) * res
    with tempfile.TemporaryDirectory(prefix="qres-bench-prom-") as tmp_s:
        tmp = Path(tmp_s)
        t = time.perf_counter()
        n = ps.write_openmetrics(tmp / "h.om", ps.site_series(events, args.step), 0, float("inf"), step_s=args.step)
        ps.create_blocks(tmp / "h.om", tmp / "tsdb")
        print(f"history {args.history}: {n:,} samples into blocks in {time.perf_counter() - t:.1f} s (promtool)")
        with ps.prometheus(tmp / "tsdb", tmp) as url:
            spec = PrometheusSpec(url=url, step_s=args.step, resolution_min=max(1, args.step // 60))
            med, best, pull = _timed(lambda: fetch_prometheus(spec, since, until), args.repeats)
            rows = pull.rows
            print(f"prometheus fetch   : {rows:,} rows in {med:.3f} s median ({best:.3f} min) = "
                  f"{rows / med:,.0f} rows/s ({pull.requests} range queries per run)")  # fmt: skip
            counter = iter(range(10**6))
            med_w, best_w, _ = _timed(
                lambda: import_prometheus(spec, tmp / f"out-{next(counter)}", since, until), args.repeats
            )
            print(f"prometheus import  : fetch + write tables {med_w:.3f} s median ({best_w:.3f} min) = "
                  f"{rows / med_w:,.0f} rows/s")  # fmt: skip
        folder = tmp / "out-0" / "health_checks"
        med_p, best_p, table = _timed(lambda: pq.read_table(folder), args.repeats)
        assert table.num_rows == rows
        print(f"parquet read       : {table.num_rows:,} rows in {med_p:.4f} s median ({best_p:.4f} min) = "
              f"{rows / med_p:,.0f} rows/s; Prometheus import is {med_w / med_p:,.0f}x slower")  # fmt: skip


if __name__ == "__main__":
    main()
