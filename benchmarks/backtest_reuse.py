"""The nightly's backtest with and without reuse of the previous run, side by side, in one process.

    .venv/bin/python benchmarks/backtest_reuse.py [--data data/sample] [--dependency saas-maps]

On a hard-linked copy of the sample, with the nightly's backtest settings: night 1 fills the
caches (the trained policy's solves, every incident's figures); night 2 is the same history
again; night 3 adds a day with a new incident (the split moves, so the policy is trained on a
longer past). Each night is timed cold (no caches, as before reuse) and warm (the caches of the
nights before, as the nightly keeps them in ``<state_dir>/cache``), and the two results are
checked equal (figures byte for byte, the trained bundle's files). Prints time, warm / cold and
how many incidents were replayed and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
COUNTS = ("train", "replayed", "reused")


def _figures(result: dict) -> str:
    return json.dumps({k: v for k, v in result.items() if k not in COUNTS}, sort_keys=True, default=str)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "sample")
    parser.add_argument("--dependency", default="saas-maps")
    args = parser.parse_args()

    from flows.params import backtest_config
    from flows.settings import load_settings
    from policies.backtest.run import run_backtest
    from policies.telemetry.incidents import append_incident_day
    from policies.telemetry.ingest import conform_tables, load_telemetry
    from tasks.backtest import StoredReplays, cached_solve
    from tasks.support.solve_cache import KEY_DIR_ENV

    tmp = Path(tempfile.mkdtemp(prefix="qres-bench-backtest-"))
    try:
        data = tmp / "data"
        shutil.copytree(args.data, data, copy_function=os.link)  # appends write new files
        os.environ[KEY_DIR_ENV] = str(tmp / "keys")
        cfg = backtest_config(load_settings(None))
        cache = tmp / "cache"
        reuse, solve = StoredReplays(cache / "backtest"), cached_solve({f: cache / f for f in ("shedding", "horizon")})
        print(f"{'night':<34}{'cold s':>8}{'warm s':>8}{'warm/cold':>11}{'replayed':>10}{'reused':>8}  same")
        for night in ("1: fills the caches", "2: the same history", "3: a day with a new incident"):
            if night.startswith("3"):
                append_incident_day(data, dependency=args.dependency, incident_id="INC-BENCH", outage_min=120)
            tables = conform_tables(load_telemetry(str(data)).tables)
            t0 = time.perf_counter()
            cold = run_backtest(tables, cfg, standby=())  # as the nightly: no standby replayed
            t1 = time.perf_counter()
            warm = run_backtest(tables, cfg, standby=(), reuse=reuse, solve=solve)
            t2 = time.perf_counter()
            same = _figures(cold) == _figures(warm) and cold["train"].files == warm["train"].files
            print(
                f"{night:<34}{t1 - t0:>8.1f}{t2 - t1:>8.1f}{(t2 - t1) / (t1 - t0):>11.2f}"
                f"{warm['replayed']:>10}{warm['reused']:>8}  {'yes' if same else 'NO'}",
                flush=True,
            )
            if not same:
                raise SystemExit("the warm backtest differs from the cold one")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
