"""Solve: the standby and routing families and the robust tier assignment, as tasks the families flow runs.

Each goes through :func:`tasks.solve.solve_problems`, the same cached solve path as shedding
(``cache_dir`` = ``<state_dir>/cache/<family>``, None = off): a re-solve whose problem did not
change gets the previous answer without solving, and the files are rebuilt from it exactly as
from a fresh solve (the bytes do not depend on the cache).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from policies.families import family
from policies.routing.export import routing_policy_json
from policies.routing.policy import latency_pool, routing_decisions_table, routing_documents
from policies.routing.restrict import block_objectives, splice
from policies.scenarios.scenario_set import NORMAL_KEY, ScenarioSet
from policies.shedding.policy import build_shedding_problems
from policies.solve.anneal import AnnealParams
from policies.solve.digest import problem_groups
from policies.standby.policy import build_standby_problem, standby_decisions_table, standby_policy_document
from policies.tiers.policy import tiers_document, tiers_table
from policies.tiers.problem import tier_problem_from_shedding
from qres_client.bundle import encode_json, encode_parquet
from tasks.solve import SolvedPolicy, solve_problems, summarize_results
from tasks.support.solve_cache import load_cached_results, store_cached_results

__all__ = [
    "solve_standby_policy",
    "solve_routing_policy",
    "solve_tier_assignment",
    "routing_latency_pool",
    "routing_problems",
    "store_latency_pool",
    "load_latency_pool",
]


@task(name="solve-standby", cache_policy=NO_CACHE)
def solve_standby_policy(
    tables: dict[str, pa.Table],
    scenarios: ScenarioSet,
    *,
    seed: int,
    time_limit_s: float,
    solvers: tuple[str, ...],
    top_k: int,
    anneal_params: AnnealParams,
    cache_dir: Path | None = None,
) -> SolvedPolicy:
    """One standby placement for all scenarios; per-scenario activation lists for the client."""
    sc = scenarios.scenarios
    problem, doc = build_standby_problem(
        tables["services"], tables["workloads"], tables["sites"], tables["standby_candidates"], sc
    )
    (res,), solved = solve_problems(
        "standby",
        [problem],
        seed=seed,
        time_limit_s=time_limit_s,
        solvers=solvers,
        top_k=top_k,
        anneal=anneal_params,
        cache_dir=cache_dir,
    )
    files = {
        "decisions.parquet": encode_parquet(standby_decisions_table(sc, problem, doc, res.best.solution)),
        "policy.json": encode_json(standby_policy_document(sc, problem, doc, res)),
    }
    records, infeasible, gap, covered = summarize_results([res], [problem], family("standby").is_feasible, [1.0])
    metrics = {
        "standby.expected_covered_per_h": covered,
        "standby.value_at_stake_per_h": problem.at_stake,
        "standby.gap": res.gap or 0.0,
        "standby.infeasible": float(infeasible),
        **{f"standby.objective.{c.info.solver}": c.objective for c in res.candidates if c.feasible},
    }
    get_run_logger().info(
        "standby: chose %s (%d candidates kept), covered %.2f of %.2f/h%s",
        res.chosen,
        int(res.best.solution.sum()),
        covered,
        problem.at_stake,
        "" if solved else " (from the cache)",
    )
    return SolvedPolicy("standby", files, metrics, records, infeasible, gap, covered)


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
    sc = scenarios.scenarios
    docs = routing_documents(
        tables["services"],
        tables["dependencies"],
        tables["workloads"],
        tables.get("health_checks"),
        sc,
        seed=seed,
        pool=pool,
        restrict=True,
        **options,
    )
    fam = family("routing")
    # Each scenario's LP covers only the services it touches (policies.routing.restrict); normal
    # is solved whole and answers for the rest. A scenario that touches nothing is normal's.
    parts = {i: fam.from_dict(d) for i, d in enumerate(docs) if d["services"]}
    order = sorted(parts)
    solved_parts, solved = solve_problems(
        "routing", [parts[i] for i in order], seed=seed, time_limit_s=time_limit_s, top_k=top_k, cache_dir=cache_dir
    )
    answers = dict(zip(order, solved_parts, strict=True))
    at = [s.key for s in sc].index(NORMAL_KEY)
    normal, normal_result = parts[at], answers[at]
    blocks = block_objectives(normal, normal_result.best.solution)
    problems, results = [], []
    for i, s in enumerate(sc):
        whole, result = splice(normal, normal_result, blocks, s.key, parts.get(i), answers.get(i))
        problems.append(_layout(whole))
        results.append(result)
    get_run_logger().info(
        "routing: %d scenarios, %d with touched services; %d solved, %d from the cache or shared",
        len(sc),
        len(parts),
        solved,
        len(parts) - solved,
    )
    files = {
        "decisions.parquet": encode_parquet(routing_decisions_table(sc, problems, results)),
        "policy.json": _policy_json(sc, problems, results, docs),
    }
    records, infeasible, worst_gap, expected = summarize_results(
        results, problems, fam.is_feasible, [s.probability for s in sc]
    )
    metrics = {
        "routing.expected_objective_ms": expected,
        "routing.worst_gap": worst_gap or 0.0,
        "routing.infeasible": float(infeasible),
        "routing.scenarios": float(len(problems)),
        "routing.solved": float(solved),
        "routing.restricted": float(len(parts)),
        "routing.distinct": float(len(problem_groups(list(parts.values())))),
    }
    return SolvedPolicy("routing", files, metrics, records, infeasible, worst_gap, expected)


def _policy_json(sc, problems, results, docs) -> bytes:
    """``encode_json(routing_policy_document(...))``'s bytes, written a scenario at a time from arrays
    (:func:`policies.routing.export.routing_policy_json`): not 4M action dicts at once at 1,000 services."""
    return routing_policy_json(sc, problems, results, docs)


def _layout(p):
    """The problem without its latency samples (one zero row, broadcast): after the solve only the
    endpoints, services and capacity are read (the bundle's files, feasibility), and a whole
    scenario's samples are 3.5 MB at 1,000 services (2 GB over 557 scenarios, held to the end)."""
    return dataclasses.replace(p, samples=np.broadcast_to(np.zeros((1, 1)), (1, p.samples.shape[1])))


def routing_problems(docs: list[dict]) -> list:
    """The routing family's problems from :func:`routing_documents`' JSON form."""
    return [family("routing").from_dict(d) for d in docs]


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
    sc = scenarios.scenarios
    shedding = build_shedding_problems(tables["services"], tables["dependencies"], tables["workloads"], sc)
    p = tier_problem_from_shedding(shedding, [s.probability for s in sc], tiers=tiers, alpha=alpha, lam=lam)
    (res,), _ = solve_problems("tiers", [p], seed=seed, time_limit_s=time_limit_s, top_k=top_k, cache_dir=cache_dir)
    doc = tiers_document(p, res)
    files = {"tiers.parquet": encode_parquet(tiers_table(p, res.best.solution)), "tiers.json": encode_json(doc)}
    return files, {
        "tiers.objective": res.best.objective,
        "tiers.expected_loss_per_h": doc["expected_loss"],
        "tiers.cvar_loss_per_h": doc["cvar_loss"],
        "tiers.gap": res.gap or 0.0,
    }
