"""Solve: the shedding policy for every scenario through the solver portfolio."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from policies.bundle import encode_json, encode_parquet
from policies.scenarios import ScenarioSet
from policies.shedding import build_shedding_problems, decisions_table, is_feasible_shedding, policy_document, \
    solve_shedding
from tasks.progress import progress_step

__all__ = ["SolvedPolicy", "solve_shedding_policy"]


@dataclass(frozen=True)
class SolvedPolicy:
    """A solved policy family: the bundle files plus what tracking and gates need."""

    policy: str
    files: dict[str, bytes]
    metrics: dict[str, float]
    solvers: list[dict] = field(default_factory=list)  # per scenario: chosen solver, objective, bound, gap
    infeasible: int = 0
    worst_gap: float | None = None
    expected_value: float = 0.0


@task(name="solve-shedding", cache_policy=NO_CACHE)
def solve_shedding_policy(tables: dict[str, pa.Table], scenarios: ScenarioSet, *, seed: int, time_limit_s: float,
                          solvers: tuple[str, ...], levels: int, top_k: int, anneal_params: dict) -> SolvedPolicy:
    """Build one shedding problem per scenario, solve each with the portfolio, export.

    One coarse task for all scenarios: a Prefect task costs ~15 ms, a scenario far less.
    """
    log = get_run_logger()
    problems = build_shedding_problems(
        tables["services"], tables["dependencies"], tables["workloads"], scenarios.scenarios, levels=levels,
    )
    with progress_step("solve shedding", len(problems)) as advance:
        results = solve_shedding(
            problems, seed=seed, time_limit_s=time_limit_s, solvers=solvers, anneal_params=anneal_params,
            top_k=top_k, progress=lambda done, total: advance(done),
        )
    table = decisions_table(scenarios.scenarios, results, problems)
    document = policy_document(scenarios.scenarios, results, problems)
    files = {"decisions.parquet": encode_parquet(table), "policy.json": encode_json(document)}

    # Re-check every chosen decision against the hard constraints, independently of the
    # solvers' own claims: the "feasible" gate counts these.
    infeasible = sum(not is_feasible_shedding(p, r.best.solution) for p, r in zip(problems, results, strict=True))
    per_scenario, wins, time_by_solver = [], {}, {}
    weighted, mass, worst_gap = 0.0, 0.0, None
    for sc, res in zip(scenarios.scenarios, results, strict=True):
        best = res.best
        wins[res.chosen] = wins.get(res.chosen, 0) + 1
        for cand in res.candidates:
            time_by_solver[cand.info.solver] = time_by_solver.get(cand.info.solver, 0.0) + cand.info.time_s
        if res.gap is not None:
            worst_gap = res.gap if worst_gap is None else max(worst_gap, res.gap)
        if sc.probability > 0:
            weighted += sc.probability * best.objective
            mass += sc.probability
        per_scenario.append({
            "scenario": sc.key, "probability": sc.probability, "chosen": res.chosen,
            "objective": best.objective, "gap": res.gap,
            "candidates": {c.info.solver: {"status": c.info.status, "objective": c.objective,
                                          "bound": c.info.bound, "time_s": c.info.time_s} for c in res.candidates},
        })
    expected_value = weighted / mass if mass else 0.0
    metrics = {
        "shedding.scenarios": float(len(problems)),
        "shedding.expected_value_per_h": expected_value,
        "shedding.worst_gap": worst_gap if worst_gap is not None else 0.0,
        "shedding.infeasible": float(infeasible),
        **{f"shedding.wins.{k}": float(v) for k, v in wins.items()},
        **{f"shedding.time_s.{k}": v for k, v in time_by_solver.items()},
        **{f"shedding.objective_sum.{s}": sum(
            c.objective for r in results for c in r.candidates if c.info.solver == s and c.feasible)
           for s in solvers},
    }
    log.info("shedding: %d scenarios solved; chosen %s; worst gap %s; expected value %.2f/h",
             len(problems), wins, "n/a" if worst_gap is None else f"{worst_gap:.4%}", expected_value)
    return SolvedPolicy("shedding", files, metrics, per_scenario, infeasible, worst_gap, expected_value)
