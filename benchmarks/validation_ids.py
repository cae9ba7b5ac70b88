"""CPU seconds of the health-check suite on one batch, against the number of known service ids.

    .venv/bin/python benchmarks/validation_ids.py [--rows 2880000] [--ids 1000,10000] [--runs 3]

One synthetic batch of health checks (a 1,000-service day file is 2.88M rows; service ids drawn
from the first 1,000 ids, 300 of them unknown) goes through the ``health_checks`` suite as
validation runs it, with the reference rule (``service_id in $service_ids``) answered beside
Great Expectations (``tasks/validation/references.py``, the default) and inside GE (as before),
while the services table knows 1,000 or 10,000 ids. Prints the median CPU seconds of ``--runs``
warm runs each and the ratio to the smallest id count: the cost per row should not grow with
the id set. Both ways must give the same records (checked here too).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_880_000)
    parser.add_argument("--ids", default="1000,10000", help="comma-separated counts of known service ids")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from tasks.validation.frames import to_pandas
    from tasks.validation.ge_suites import SuiteRunner, new_context

    rng = np.random.default_rng(7)
    n = args.rows
    known = np.array([f"svc-{i:05d}" for i in range(1000)], dtype=object)
    sid = known[rng.integers(0, known.size, n)]
    sid[rng.choice(n, 300, replace=False)] = [f"ghost-{i}" for i in range(300)]
    batch = pa.table(
        {
            "ts": pa.array(np.arange(n, dtype="int64") * 60_000_000, pa.timestamp("us", "UTC")),
            "service_id": pa.array(sid, pa.string()),
            "status": pa.array(np.array(["up", "degraded", "down"], dtype=object)[rng.integers(0, 3, n)]),
            "latency_ms": pa.array(rng.random(n) * 100),
            "error_rate": pa.array(rng.random(n)),
            "http_code": pa.array(np.full(n, 200, dtype="int32")),
            "probe": pa.array(np.array(["probe-a", "probe-b"], dtype=object)[rng.integers(0, 2, n)]),
        }
    )
    frame = to_pandas(batch)
    print(f"{n:,} rows; CPU s per run (median of {args.runs}, warm)")
    print(f"{'ids':>7} {'beside GE':>10} {'inside GE':>10}  same records")
    first = None
    for ids in (int(x) for x in args.ids.split(",")):
        params = {"service_ids": [f"svc-{i:05d}" for i in range(ids)], "now_utc": pd.Timestamp("2100-01-01")}
        row, answers = [], []
        for native in (True, False):
            context = new_context()
            runner = SuiteRunner(context, context.data_sources.add_pandas("bench"), native_references=native)
            answers.append(runner.run("health_checks", frame, params))  # warm-up: builds the definition
            times = []
            for _ in range(args.runs):
                t0 = time.process_time()
                runner.run("health_checks", frame, params)
                times.append(time.process_time() - t0)
            row.append(statistics.median(times))
        first = first or row
        ratios = f"(x{row[0] / first[0]:.2f}, x{row[1] / first[1]:.2f})"
        print(f"{ids:>7,} {row[0]:>10.2f} {row[1]:>10.2f}  {'yes' if answers[0] == answers[1] else 'NO'} {ratios}")


if __name__ == "__main__":
    main()
