"""Ingest + validate on ~10M health-check rows against a raw pyarrow read of the same files.

    .venv/bin/python benchmarks/ingest.py [--days 87] [--data DIR] [--repeat 1]

Writes the sample generator's output (``policies.telemetry.sample.write_sample``; 87 days = 10,022,400
health checks in 87 day files, plus the small tables) to a temporary folder unless ``--data`` is
given, then times, side by side in one run, each in its own child process (so each peak RSS is
its own; imports are not timed):

- raw:      ``pq.read_table`` of every file + group by (service_id, status) with a count;
- ingest:   what the nightly flow runs: incremental ingest into an empty state folder (reads,
            hashes, removes exact duplicates, stores the content-addressed parts), the schema step
            per day file and every Great Expectations suite per batch of day files (every row),
            then the same group by on the validated table;
- re-ingest: the same again on the committed state (every part reused) for reference.

and prints seconds, peak RSS and the ratio ingest / raw (goal: 4 or less; memory goal: under
4 GB at 10M rows).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _aggregate(table):
    return table.group_by(["service_id", "status"]).aggregate([([], "count_all")]).num_rows


def phase_raw(data: Path, _state: Path) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    start = time.perf_counter()
    tables = {p.stem: pq.read_table(p) for p in sorted(data.glob("*.parquet"))}
    checks = pa.concat_tables([pq.read_table(p) for p in sorted((data / "health_checks").glob("*.parquet"))])
    groups = _aggregate(checks)
    return {"s": time.perf_counter() - start, "rows": checks.num_rows, "groups": groups, "tables": len(tables) + 1}


def phase_ingest(data: Path, state: Path) -> dict:
    from tasks.ingest import read_telemetry
    from tasks.validate import check_telemetry
    from tasks.validation.suite import validate_tables

    validate_tables({})  # warm up Great Expectations' context (import-time cost, not per run)
    start = time.perf_counter()
    telemetry = read_telemetry(str(data), state_dir=state)
    read_s = time.perf_counter() - start
    report, _ = check_telemetry(telemetry, quarantine_max_share=0.001)
    groups = _aggregate(report.clean["health_checks"])
    from policies.telemetry.watermark import commit_ingest

    commit_ingest(telemetry)
    return {
        "s": time.perf_counter() - start,
        "read_s": read_s,
        "rows": report.rows_validated,
        "groups": groups,
        "ingest": telemetry.extra.get("ingest"),
    }


def _child(phase: str, data: Path, state: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--phase", phase, "--data", str(data), "--state", str(state)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=87)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--state", type=Path)
    parser.add_argument("--phase", choices=["raw", "ingest"])
    args = parser.parse_args()
    if args.phase:  # child: one phase, print its figures as JSON
        result = (phase_raw if args.phase == "raw" else phase_ingest)(args.data, args.state)
        result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory(prefix="qres-bench-ingest-") as tmp:
        data = args.data
        if data is None:
            from policies.telemetry.sample import write_sample

            data = Path(tmp) / "data"
            write_sample(data, seed=7, days=args.days, start="2026-01-01")  # all in the past
        state = Path(tmp) / "state"
        raw = _child("raw", data, state)
        first = _child("ingest", data, state)
        again = _child("ingest", data, state)
        day_files = len(list((data / "health_checks").glob("*")))
    print(f"{raw['rows']:,} health-check rows in {day_files} day files")
    print(f"{'step':<28}{'seconds':>9}{'peak RSS MB':>13}")
    print(f"{'raw pyarrow read + group by':<28}{raw['s']:>9.2f}{raw['rss_mb']:>13.0f}")
    print(f"{'ingest + validate':<28}{first['s']:>9.2f}{first['rss_mb']:>13.0f}   (read {first['read_s']:.2f} s)")
    print(
        f"{'re-ingest + validate':<28}{again['s']:>9.2f}{again['rss_mb']:>13.0f}   (read {again['read_s']:.2f} s, "
        f"{again['ingest']['reused']} files reused)"
    )
    assert raw["groups"] == first["groups"], "the validated table must aggregate like the raw one"
    print(
        f"ratio ingest+validate / raw read: {first['s'] / raw['s']:.2f} (goal <= 4); "
        f"peak RSS {first['rss_mb'] / 1024:.2f} GB (goal < 4 GB)"
    )


if __name__ == "__main__":
    main()
