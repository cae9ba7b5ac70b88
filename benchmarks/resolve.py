"""Re-solve after an incident vs a full nightly run, side by side, in one process.

    .venv/bin/python benchmarks/resolve.py [--data data/sample] [--dependency saas-maps] [--repeat 3]

Links the sample into a temporary folder (inputs are never modified), runs one nightly
to warm the process up (Prefect's ephemeral API, imports), then times a full nightly
(``<state>/cache`` cleared first, so every scenario and family is solved and every file's
window grid computed) and, after appending one day of telemetry with an incident that takes
one dependency down, ``resolve`` for that incident (which uses what the nightly kept: the
per-file window grids, the solve caches and routing's latency profiles).
Each is repeated ``--repeat`` times (a new incident day before each re-solve) and the
medians are compared: single runs vary by ~2 s on a busy machine (Prefect API calls).
Goal: resolve <= 1/4 of the nightly's time.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT / "data" / "sample"))
    parser.add_argument("--dependency", default="saas-maps")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; medians are compared")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="qres-bench-resolve-"))
    from flows.environment import configure_environment, embedded_run

    configure_environment(tmp / "state")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from flows.nightly import nightly
    from flows.resolve import resolve
    from policies.telemetry.incidents import append_incident_day

    data = tmp / "data"
    shutil.copytree(args.data, data, copy_function=os.link)  # hard links; appends write new files
    cfg = tmp / "qres.toml"
    stack = contextlib.ExitStack()
    cfg.write_text(f'data_dir = "{data}"\nstore_dir = "bundles"\nstate_dir = "state"\nseed = 7\n')
    try:
        stack.enter_context(embedded_run())  # as `qres run` / `qres resolve` do (no heartbeats on an embedded API)
        nightly(config=str(cfg))  # warm-up
        nightly_runs, resolve_runs = [], []
        for _ in range(args.repeat):
            shutil.rmtree(tmp / "state" / "cache", ignore_errors=True)  # every scenario and family solved
            t0 = time.perf_counter()
            full = nightly(config=str(cfg))
            nightly_runs.append(time.perf_counter() - t0)
        for i in range(args.repeat):
            append_incident_day(data, dependency=args.dependency, incident_id=f"INC-BENCH-{i}", outage_min=120)
            t0 = time.perf_counter()
            again = resolve(incident=f"INC-BENCH-{i}", config=str(cfg))
            resolve_runs.append(time.perf_counter() - t0)
    finally:
        stack.close()
        shutil.rmtree(tmp, ignore_errors=True)
    nightly_s, resolve_s = statistics.median(nightly_runs), statistics.median(resolve_runs)
    print(
        "runs (s): nightly "
        + ", ".join(f"{t:.2f}" for t in nightly_runs)
        + "; resolve "
        + ", ".join(f"{t:.2f}" for t in resolve_runs)
    )
    print(f"{'median':<10}{'seconds':>10}{'rows validated':>18}{'scenarios solved':>20}  published")
    print(
        f"{'nightly':<10}{nightly_s:>10.2f}{full['rows_validated']:>18,}{full['scenarios_solved']:>13} of "
        f"{full['scenarios']:<4}  {full['bundle_version']}"
    )
    print(
        f"{'resolve':<10}{resolve_s:>10.2f}{again['rows_validated']:>18,}{again['scenarios_solved']:>13} of "
        f"{again['scenarios']:<4}  {again['bundle_version']}"
    )
    print(f"resolve / nightly = {resolve_s / nightly_s:.3f} (goal <= 0.25)")


if __name__ == "__main__":
    main()
