"""Time-coupled shedding (policies/shedding/horizon.py): greedy vs CP-SAT vs annealing at equal wall time.

Instance classes: horizon x workloads (small 6 x 12, medium 12 x 40, large 24 x 100) times
lightly (capacity 85% of the total demand) or heavily (45%) constrained, times the correlated-risk
pairs (policies/shedding/correlated.py): ``none``, or workloads in clusters of about six sharing a
dependency that may fail next (10% each, independently), each member losing 0.5-1.5x its value
when it does, with the pair costs of the nightly's rule at risk aversion 1 (``pairs``) and 10
(``pairs10``, where the quadratic terms weigh enough to move the optimum). Values, risks and
demands are drawn as in the sample world; survival comes from a log-normal outage duration
(heavy-tailed, as real outages are); switching costs use the documented defaults
(policies/switching.py). CP-SAT gets ``--budget`` seconds and the whole greedy plan as
its hint; annealing gets the same wall time as repeated seeded batches of reads (best kept).
The winner per class is the best mean objective; margins are relative to greedy (the live rule).

    .venv/bin/python benchmarks/time_coupled_solvers.py [--budget 2] [--instances 3]
"""

from __future__ import annotations

import argparse
import itertools
import math
import time

import numpy as np
from scipy.stats import lognorm

from policies.shedding.correlated import correlated_risk
from policies.shedding.horizon import HorizonProblem
from policies.shedding.horizon_solvers import AnnealingHorizonSolver, CpSatHorizonSolver, GreedyHorizonSolver
from policies.shedding.problem import SheddingProblem
from policies.switching import DEFAULT_SWITCH_COST_S, SwitchCosts, default_warmup_s

CLASSES = {"small": (6, 12), "medium": (12, 40), "large": (24, 100)}
TIGHTNESS = {"light": 0.85, "heavy": 0.45}
PAIRS = {"none": 0.0, "pairs": 1.0, "pairs10": 10.0}


def correlated_pairs(base: SheddingProblem, rng, aversion: float) -> np.ndarray | None:
    """Clusters of ~6 workloads share a dependency that fails next with probability 0.1 each."""
    n = len(base.workload_ids)
    cluster = rng.integers(0, max(2, n // 6), n)
    loss = base.value_per_hour * rng.uniform(0.5, 1.5, n)
    later = [
        SheddingProblem(
            f"{base.key}+{c}",
            base.workload_ids,
            base.value_per_hour,
            base.risk_per_hour + np.where(cluster == c, loss, 0.0),
            base.demand,
            base.min_share,
            base.runnable,
            base.capacity,
            base.levels,
        )  # fmt: skip
        for c in np.unique(cluster)
    ]
    p = [0.1] * len(later)
    scale = float(base.value_per_hour.sum())
    return correlated_risk(base, later, 1.0 - sum(p), p, aversion=aversion, scale=scale)


def make_instance(steps: int, n: int, share: float, seed: int, aversion: float = 0.0) -> HorizonProblem:
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
    pairs = correlated_pairs(base, rng, aversion) if aversion > 0 else None
    return HorizonProblem(base, step_s, survival, full, [full], down, up, dwell=2, pair_cost=pairs)


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
    print(f"{'class':<22}{'greedy':>12}{'cpsat':>12}{'anneal':>12}{'cpsat gap':>11}  winner (vs greedy; runner-up)")
    for cname, (steps, n) in CLASSES.items():
        for (tname, share), (pname, aversion) in itertools.product(TIGHTNESS.items(), PAIRS.items()):
            rows = {"greedy": [], "cpsat": [], "anneal": []}
            gaps, times = [], []
            for i in range(args.instances):
                p = make_instance(steps, n, share, seed=1000 * i + steps + n, aversion=aversion)
                rows["greedy"].append(GreedyHorizonSolver().solve(p, seed=i, time_limit_s=args.budget).objective)
                t0 = time.perf_counter()
                cp = CpSatHorizonSolver(wall_time_factor=10.0).solve(p, seed=i, time_limit_s=args.budget)
                times.append(time.perf_counter() - t0)
                rows["cpsat"].append(cp.objective)
                gaps.append((cp.info.bound - cp.objective) / max(abs(cp.objective), 1e-9))
                rows["anneal"].append(anneal_for(p, times[-1], seed=i)[0].objective)
            mean = {k: float(np.mean(v)) for k, v in rows.items()}
            win, second = sorted(mean, key=lambda k: (mean[k], k == "greedy"), reverse=True)[:2]
            margin = (mean[win] - mean["greedy"]) / abs(mean["greedy"]) if mean["greedy"] else math.nan
            lead = (mean[win] - mean[second]) / abs(mean[second]) if mean[second] else math.nan
            print(
                f"{cname + '/' + tname + '/' + pname:<22}{mean['greedy']:>12.1f}{mean['cpsat']:>12.1f}"
                f"{mean['anneal']:>12.1f}{max(gaps):>10.2%}  {win} (+{margin:.2%}; {second} -{lead:.2%};"
                f" cpsat {np.mean(times):.2f} s)"
            )


if __name__ == "__main__":
    main()
