"""Time-coupled shedding (policies/shedding/horizon.py): greedy vs CP-SAT vs annealing at equal wall time.

Instance classes: horizon x workloads (small 6 x 12, medium 12 x 40, large 24 x 100) times
lightly (capacity 85% of the total demand) or heavily (45%) constrained. Values, risks and
demands are drawn as in the sample world; survival comes from a log-normal outage duration
(heavy-tailed, as real outages are); switching costs use the documented defaults
(policies/switching.py). CP-SAT gets ``--budget`` seconds and the whole greedy plan as
its hint; annealing gets the same wall time as repeated seeded batches of reads (best kept).
The winner per class is the best mean objective; margins are relative to greedy (the live rule).

    .venv/bin/python benchmarks/time_coupled_solvers.py [--budget 2] [--instances 3]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from scipy.stats import lognorm

from policies.shedding.horizon import HorizonProblem
from policies.shedding.horizon_solvers import AnnealingHorizonSolver, CpSatHorizonSolver, GreedyHorizonSolver
from policies.shedding.problem import SheddingProblem
from policies.switching import DEFAULT_SWITCH_COST_S, SwitchCosts, default_warmup_s

CLASSES = {"small": (6, 12), "medium": (12, 40), "large": (24, 100)}
TIGHTNESS = {"light": 0.85, "heavy": 0.45}


def make_instance(steps: int, n: int, share: float, seed: int) -> HorizonProblem:
    rng = np.random.default_rng(seed)
    L = 4
    value = rng.lognormal(7.5, 0.6, n)
    risk = np.where(rng.random(n) < 0.3, value * rng.uniform(0.5, 1.5, n), value * rng.uniform(0, 0.2, n))
    demand = rng.uniform(2, 25, n)
    min_share = np.where(rng.random(n) < 0.25, 0.25, 0.0)
    base = SheddingProblem(
        f"bench-{steps}x{n}-{share}-{seed}",
        tuple(f"wl-{i:03d}" for i in range(n)),
        value,
        risk,
        demand,
        min_share,
        rng.random(n) > 0.05,
        share * float(demand.sum()),
        L,
    )
    median_min = float(rng.uniform(10, 40))
    horizon_s = 3 * median_min * 60
    step_s = horizon_s / steps
    survival = lognorm.sf(np.arange(steps) * step_s / 60, s=1.2, scale=median_min)
    tier = rng.integers(0, 4, n)
    costs = SwitchCosts(base.workload_ids, value, np.full(n, DEFAULT_SWITCH_COST_S), default_warmup_s(tier), L)
    down, up = costs.per_level()
    full = np.full(n, L)
    return HorizonProblem(base, step_s, survival, full, [full], down, up, dwell=2)


def anneal_for(problem: HorizonProblem, budget_s: float, seed: int):
    """Batches of 8 reads x 400 sweeps, new seed each, until the wall time is spent; the best."""
    solver = AnnealingHorizonSolver(num_reads=8, num_sweeps=400)
    best, t0, batch = None, time.perf_counter(), 0
    while batch == 0 or time.perf_counter() - t0 < budget_s:
        res = solver.solve(problem, seed=seed + batch, time_limit_s=budget_s)
        best = res if best is None or res.objective > best.objective else best
        batch += 1
    return best, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=2.0, help="wall seconds per solver and instance")
    ap.add_argument("--instances", type=int, default=3)
    args = ap.parse_args()
    print(f"budget {args.budget} s per solver and instance, {args.instances} instances per class\n")
    print(f"{'class':<14}{'greedy':>12}{'cpsat':>12}{'anneal':>12}{'cpsat gap':>11}  winner (vs greedy)")
    for cname, (steps, n) in CLASSES.items():
        for tname, share in TIGHTNESS.items():
            rows = {"greedy": [], "cpsat": [], "anneal": []}
            gaps, times = [], []
            for i in range(args.instances):
                p = make_instance(steps, n, share, seed=1000 * i + steps + n)
                rows["greedy"].append(GreedyHorizonSolver().solve(p, seed=i, time_limit_s=args.budget).objective)
                t0 = time.perf_counter()
                cp = CpSatHorizonSolver(wall_time_factor=10.0).solve(p, seed=i, time_limit_s=args.budget)
                times.append(time.perf_counter() - t0)
                rows["cpsat"].append(cp.objective)
                gaps.append((cp.info.bound - cp.objective) / max(abs(cp.objective), 1e-9))
                rows["anneal"].append(anneal_for(p, times[-1], seed=i)[0].objective)
            mean = {k: float(np.mean(v)) for k, v in rows.items()}
            win = max(mean, key=lambda k: (mean[k], k == "greedy"))
            margin = (mean[win] - mean["greedy"]) / abs(mean["greedy"]) if mean["greedy"] else math.nan
            print(
                f"{cname + '/' + tname:<14}{mean['greedy']:>12.1f}{mean['cpsat']:>12.1f}{mean['anneal']:>12.1f}"
                f"{max(gaps):>10.2%}  {win} (+{margin:.2%}; cpsat {np.mean(times):.2f} s)"
            )


if __name__ == "__main__":
    main()
