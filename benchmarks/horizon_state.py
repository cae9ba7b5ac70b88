"""One time-coupled state's CP-SAT solve in isolation: its size, which limit ended the search, seconds.

    .venv/bin/python benchmarks/horizon_state.py /tmp/h1000/state0201.json [...]

The states come from ``benchmarks/solve_scale.py --horizon-dump DIR`` (each restricted horizon
problem as JSON, and ``DIR/states.tsv`` with every state's size and search). Why a script of its
own: a slow state of a 1,000-service nightly is one line of a 30-minute run; here it is solved
alone, as the nightly solves it (the run seed from ``qres.toml``, the problem's seed from its
content, the solve time limit), so an encoding can be measured on it in seconds.
Prints per state: workloads, correlated-risk pairs, CP-SAT's status, what stopped the search
(None: finished; "deterministic"; "wall_clock": the load-dependent net), deterministic units,
wall seconds, the objective and CP-SAT's bound.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from flows.settings import load_settings
    from policies.shedding.horizon import horizon_problem_from_dict
    from policies.shedding.horizon_solvers import HORIZON, CpSatHorizonSolver

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("states", nargs="+", help="state JSON files from solve_scale.py --horizon-dump")
    args = parser.parse_args()
    settings = load_settings(ROOT / "qres.toml")
    print("| state | workloads | pairs | status | stopped by | det. units | wall s | objective | bound |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for f in args.states:
        p = horizon_problem_from_dict(json.loads(Path(f).read_text()))
        t = time.perf_counter()
        r = CpSatHorizonSolver().solve(
            p, seed=HORIZON.problem_seed(settings.seed, p), time_limit_s=settings.solve.time_limit_s
        )
        e = r.info.extra
        print(
            f"| {Path(f).name} | {len(p.base.workload_ids)} | {p.pairs[0].size} | {e['cp_status']} | "
            f"{e['stopped_by']} | {e['deterministic_time']:.3f} | {time.perf_counter() - t:.2f} | "
            f"{r.objective:.3f} | {r.info.bound:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
