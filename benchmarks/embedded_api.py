"""Prefect's temporary API: started by Prefect on first use vs early by qres, from invocation.

    .venv/bin/python benchmarks/embedded_api.py [--runs 3]

Each run is a fresh process that does what ``qres run`` does before its first task: set the
environment, import the nightly's modules (Prefect, MLflow, Great Expectations, the solvers)
and run one trivial flow on the temporary API, against an existing Prefect database (the usual
case: ``<state_dir>/prefect`` persists between runs). ``prefect``: Prefect starts its server on
the first API call (``SubprocessASGIServer``); ``early``: flows/embedded_api.py starts the same
server command before the imports. Runs alternate between the two; prints each run, the
medians and their difference.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import sys
sys.path.insert(0, {root!r})
from flows.environment import configure_environment, embedded_run
configure_environment({state!r})
api = None
if {early!r}:
    from flows.embedded_api import start_embedded_api
    api = start_embedded_api()
import flows.nightly  # noqa: F401 - the imports `qres run` pays before its first API call
from prefect import flow

@flow(name="qres-bench-first-call")
def first() -> int:
    return 1

with embedded_run(api):
    first()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each, alternating")
    args = parser.parse_args()
    state = tempfile.mkdtemp(prefix="qres-bench-embedded-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "600"  # a loaded machine needs more than 90 s
    times: dict[str, list[float]] = {"prefect": [], "early": []}

    def once(kind: str) -> float:
        code = CHILD.format(root=str(ROOT), state=state, early=kind == "early")
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=1200)
        if res.returncode:
            raise SystemExit(f"{kind} run failed:\n{res.stderr[-3000:]}")
        return time.perf_counter() - t0

    try:
        once("prefect")  # creates the Prefect database (migrations): not what a second run pays
        for i in range(args.runs):
            for kind in ("prefect", "early") if i % 2 == 0 else ("early", "prefect"):
                times[kind].append(once(kind))
                print(f"  {kind:<8}{times[kind][-1]:>7.1f} s", flush=True)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    a, b = statistics.median(times["prefect"]), statistics.median(times["early"])
    print(f"median from invocation to a first flow run: Prefect's own start {a:.1f} s, started early {b:.1f} s")
    print(f"saved {a - b:.1f} s ({(a - b) / a:.0%}); load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
