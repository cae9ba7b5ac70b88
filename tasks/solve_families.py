"""Solve: the standby and routing families and the robust tier assignment, through the portfolio.

Each solve goes through the content-addressed cache (:func:`tasks.support.solve_cache.solve_cached`,
``cache_dir`` = ``<state_dir>/cache/<family>``, None = off): the key is the problem's whole
content, the run seed and the solver settings, so a re-solve whose problem did not change
gets the previous answer without solving, and the files are rebuilt from it exactly as
from a fresh solve (the bytes do not depend on the cache).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from policies.routing.policy import (
    latency_pool,
    routing_decisions_table,
    routing_documents,
    routing_policy_document,
    solve_routing,
)
from policies.routing.problem import is_feasible_routing, routing_problem_from_dict
from policies.scenarios.scenario_set import ScenarioSet
from policies.shedding.policy import build_shedding_problems
from policies.solve.portfolio import derive_seed, solve_portfolio
from policies.standby.policy import (
    build_standby_problem,
    solve_standby,
    standby_decisions_table,
    standby_policy_document,
)
from policies.standby.problem import is_feasible_standby
from policies.tiers.policy import (
    TIER_SOLVERS,
    is_feasible_tiers,
    tier_objective,
    tier_problem_from_shedding,
    tiers_document,
    tiers_table,
)
from qres_client.bundle import encode_json, encode_parquet
from tasks.solve import SolvedPolicy
from tasks.support.solve_cache import content_cache_key, load_cached_results, solve_cached, store_cached_results

__all__ = [
    "solve_standby_policy",
    "solve_routing_policy",
    "solve_tier_assignment",
    "routing_latency_pool",
    "store_latency_pool",
    "load_latency_pool",
]


def _record(r) -> dict:
    return {
        "scenario": r.problem_key,
        "chosen": r.chosen,
        "objective": r.best.objective,
        "bound": r.bound,
        "gap": r.gap,
        "candidates": {
            c.info.solver: {
                "status": c.info.status,
                "objective": c.objective,
                "bound": c.info.bound,
                "time_s": c.info.time_s,
                "seed": c.info.seed,
            }
            for c in r.candidates
        },
    }


@task(name="solve-standby", cache_policy=NO_CACHE)
def solve_standby_policy(
    tables: dict[str, pa.Table],
    scenarios: ScenarioSet,
    *,
    seed: int,
    time_limit_s: float,
    solvers: tuple[str, ...],
    top_k: int,
    anneal_params: dict,
    cache_dir: Path | None = None,
) -> SolvedPolicy:
    """One standby placement for all scenarios; per-scenario activation lists for the client."""
    problem, doc = build_standby_problem(
        tables["services"], tables["workloads"], tables["sites"], tables["standby_candidates"], scenarios.scenarios
    )
    key = content_cache_key(
        "standby",
        problem,
        seed=seed,
        settings={"time_limit_s": time_limit_s, "solvers": list(solvers), "top_k": top_k, "anneal": anneal_params},
    )
    res, hit = solve_cached(
        cache_dir,
        key,
        lambda: solve_standby(
            problem, seed=seed, time_limit_s=time_limit_s, solvers=solvers, anneal_params=anneal_params, top_k=top_k
        ),
    )
    files = {
        "decisions.parquet": encode_parquet(
            standby_decisions_table(scenarios.scenarios, problem, doc, res.best.solution)
        ),
        "policy.json": encode_json(standby_policy_document(scenarios.scenarios, problem, doc, res)),
    }
    infeasible = int(not is_feasible_standby(problem, res.best.solution))
    metrics = {
        "standby.expected_covered_per_h": res.best.objective,
        "standby.value_at_stake_per_h": problem.at_stake,
        "standby.gap": res.gap or 0.0,
        "standby.infeasible": float(infeasible),
        **{f"standby.objective.{c.info.solver}": c.objective for c in res.candidates if c.feasible},
    }
    get_run_logger().info(
        "standby: chose %s (%d candidates kept), covered %.2f of %.2f/h%s",
        res.chosen,
        int(res.best.solution.sum()),
        res.best.objective,
        problem.at_stake,
        " (from the cache)" if hit else "",
    )
    return SolvedPolicy("standby", files, metrics, [_record(res)], infeasible, res.gap, res.best.objective)


@task(name="routing-latency-pool", cache_policy=NO_CACHE)
def routing_latency_pool(health_checks: pa.Table) -> dict:
    """Every service's observed latencies (sorted) and down share: needs only the validated checks,
    so it runs beside the failure model's fit."""
    return latency_pool(health_checks)


_POOL_KEY = "latency-pool-v1"  # one entry, replaced by every run that computes the pool


def store_latency_pool(cache_dir: Path, pool: dict, *, snapshot: str) -> None:
    """Keep the pool a nightly computed, for the re-solves until the next one (atomic write)."""
    store_cached_results(cache_dir, {_POOL_KEY: {"snapshot": snapshot, "pool": pool}})


def load_latency_pool(cache_dir: Path) -> tuple[dict, str] | None:
    """(pool, snapshot it was computed from) of the last run that computed one; None if there is none."""
    stored = load_cached_results(cache_dir, [_POOL_KEY]).get(_POOL_KEY)
    return (stored["pool"], stored["snapshot"]) if stored else None


@task(name="solve-routing", cache_policy=NO_CACHE)
def solve_routing_policy(
    tables: dict[str, pa.Table],
    scenarios: ScenarioSet,
    *,
    seed: int,
    time_limit_s: float,
    top_k: int,
    options: dict,
    cache_dir: Path | None = None,
    pool: dict | None = None,
) -> SolvedPolicy:
    """Per scenario, traffic weights across each service's region endpoints (LP with a CVaR term)."""
    docs = routing_documents(
        tables["services"],
        tables["dependencies"],
        tables["workloads"],
        tables.get("health_checks"),
        scenarios.scenarios,
        seed=seed,
        pool=pool,
        **options,
    )
    problems = [routing_problem_from_dict(d) for d in docs]
    # Per scenario, like shedding: each solve is seeded by its problem's key, so a scenario whose
    # problem did not change gets exactly the answer a fresh solve would give.
    keys = [
        content_cache_key("routing", p, seed=seed, settings={"time_limit_s": time_limit_s, "top_k": top_k})
        for p in problems
    ]
    found = load_cached_results(cache_dir, keys)
    fresh = {
        k: solve_routing(p, seed=seed, time_limit_s=time_limit_s, top_k=top_k)
        for k, p in zip(keys, problems)
        if k not in found
    }
    store_cached_results(cache_dir, fresh)
    results = [found.get(k) or fresh[k] for k in keys]
    get_run_logger().info(
        "routing: %d of %d scenarios solved, %d from the cache", len(fresh), len(problems), len(problems) - len(fresh)
    )
    files = {
        "decisions.parquet": encode_parquet(routing_decisions_table(scenarios.scenarios, problems, results)),
        "policy.json": encode_json(routing_policy_document(scenarios.scenarios, problems, results, docs)),
    }
    infeasible = sum(not is_feasible_routing(p, r.best.solution) for p, r in zip(problems, results))
    gaps = [r.gap for r in results if r.gap is not None]
    mass = sum(s.probability for s in scenarios.scenarios) or 1.0
    expected = sum(s.probability * r.best.objective for s, r in zip(scenarios.scenarios, results)) / mass
    metrics = {
        "routing.expected_objective_ms": expected,
        "routing.worst_gap": max(gaps, default=0.0),
        "routing.infeasible": float(infeasible),
        "routing.scenarios": float(len(problems)),
        "routing.solved": float(len(fresh)),
    }
    return SolvedPolicy(
        "routing", files, metrics, [_record(r) for r in results], infeasible, max(gaps, default=None), expected
    )


@task(name="solve-tiers", cache_policy=NO_CACHE)
def solve_tier_assignment(
    tables: dict[str, pa.Table],
    scenarios: ScenarioSet,
    *,
    seed: int,
    time_limit_s: float,
    tiers: int,
    alpha: float,
    lam: float,
    top_k: int,
    cache_dir: Path | None = None,
) -> tuple[dict[str, bytes], dict]:
    """The robust tier assignment, as extra files for the shedding bundle (tiers.parquet, tiers.json)."""
    shedding = build_shedding_problems(
        tables["services"], tables["dependencies"], tables["workloads"], scenarios.scenarios
    )
    p = tier_problem_from_shedding(
        shedding, [s.probability for s in scenarios.scenarios], tiers=tiers, alpha=alpha, lam=lam
    )
    key = content_cache_key(
        "tiers", p, seed=seed, settings={"time_limit_s": time_limit_s, "top_k": top_k, "solvers": list(TIER_SOLVERS)}
    )
    res, _ = solve_cached(
        cache_dir,
        key,
        lambda: solve_portfolio(
            p,
            [v() for v in TIER_SOLVERS.values()],
            objective=tier_objective,
            is_feasible=is_feasible_tiers,
            seed=derive_seed(seed, p.key),
            time_limit_s=time_limit_s,
            sense="min",
            top_k=top_k,
        ),
    )
    doc = tiers_document(p, res)
    files = {"tiers.parquet": encode_parquet(tiers_table(p, res.best.solution)), "tiers.json": encode_json(doc)}
    return files, {
        "tiers.objective": res.best.objective,
        "tiers.expected_loss_per_h": doc["expected_loss"],
        "tiers.cvar_loss_per_h": doc["cvar_loss"],
        "tiers.gap": res.gap or 0.0,
    }
