"""Solve: the shedding policy for every scenario through the solver portfolio.

Scenarios whose problem is unchanged come from a content-addressed cache
(:mod:`tasks.support.solve_cache`); the rest are solved in chunks submitted to the flow's task
runner (threads by default, Dask with ``qres run --runner dask``). Chunks keep Prefect's
per-task cost (~15 ms) small next to the work; results are put back in scenario order, so
the bundle bytes do not depend on the runner, the chunking or the cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.logging import get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from policies.scenarios.scenario_set import ScenarioSet
from policies.shedding.fallback import FALLBACK_FILE, fallback_document
from policies.shedding.policy import (
    SheddingProblem,
    build_shedding_problems,
    decisions_table,
    is_feasible_shedding,
    policy_document,
    solve_shedding,
)
from policies.solve.portfolio import PortfolioResult
from qres_client.bundle import encode_json, encode_parquet
from tasks.support.progress import progress_step
from tasks.support.solve_cache import load_cached_results, problem_cache_key, store_cached_results

__all__ = ["SolvedPolicy", "solve_shedding_policy", "solve_shedding_chunk", "DEFAULT_CHUNK_SIZE"]

DEFAULT_CHUNK_SIZE = 16


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


@task(name="solve-shedding-chunk", cache_policy=NO_CACHE)
def solve_shedding_chunk(
    problems: Sequence[SheddingProblem],
    *,
    seed: int,
    time_limit_s: float,
    solvers: tuple[str, ...],
    top_k: int,
    anneal_params: dict,
) -> list[PortfolioResult]:
    """Solve one chunk of scenarios; deterministic compute, so no retries."""
    return solve_shedding(
        problems, seed=seed, time_limit_s=time_limit_s, solvers=solvers, anneal_params=anneal_params, top_k=top_k
    )


def _solve_missing(
    problems: list[SheddingProblem], *, chunk_size: int, timeout_s: float | None, advance, **params
) -> list[PortfolioResult]:
    # Prefect cannot interrupt a worker thread (it only warns), so the timeout applies where
    # chunks run as real tasks elsewhere (Dask); threads stop on the flow's timeout.
    on_threads = isinstance(getattr(FlowRunContext.get(), "task_runner", None), ThreadPoolTaskRunner)
    chunk_task = (
        solve_shedding_chunk.with_options(timeout_seconds=timeout_s)
        if timeout_s and not on_threads
        else solve_shedding_chunk
    )
    chunks = [problems[i : i + chunk_size] for i in range(0, len(problems), chunk_size)]
    futures = [chunk_task.submit(chunk, **params) for chunk in chunks]
    out: list[PortfolioResult] = []
    for future in futures:  # in submission order: the answer does not depend on which chunk ends first
        out.extend(future.result())
        advance(len(out))
    return out


def solve_shedding_policy(
    tables: dict[str, pa.Table],
    scenarios: ScenarioSet,
    *,
    seed: int,
    time_limit_s: float,
    solvers: tuple[str, ...],
    levels: int,
    top_k: int,
    anneal_params: dict,
    cache_dir: Path | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    timeout_s: float | None = None,
    scope: Sequence[str] = (),
) -> SolvedPolicy:
    """Build one shedding problem per scenario, reuse cached answers, solve the rest in chunks, export.

    Must run inside a flow (chunks are submitted to its task runner). ``scope`` only
    labels the run: the scenarios that involve those dependencies are counted as touched.
    """
    log = get_run_logger()
    problems = build_shedding_problems(
        tables["services"],
        tables["dependencies"],
        tables["workloads"],
        scenarios.scenarios,
        levels=levels,
    )
    key_settings = {"time_limit_s": time_limit_s, "solvers": list(solvers), "top_k": top_k, "anneal": anneal_params}
    keys = [problem_cache_key(p, seed=seed, settings=key_settings) for p in problems]
    cached = load_cached_results(cache_dir, keys)
    missing = [(k, p) for k, p in zip(keys, problems, strict=True) if k not in cached]
    with progress_step("solve shedding", len(missing)) as advance:
        fresh = _solve_missing(
            [p for _, p in missing],
            chunk_size=max(1, chunk_size),
            timeout_s=timeout_s,
            advance=advance,
            seed=seed,
            time_limit_s=time_limit_s,
            solvers=solvers,
            top_k=top_k,
            anneal_params=anneal_params,
        )
    solved_now = {k: r for (k, _), r in zip(missing, fresh, strict=True)}
    store_cached_results(cache_dir, solved_now)
    results = [cached.get(k) or solved_now[k] for k in keys]
    in_scope = set(scope)
    touched = sum(bool(in_scope & set(s.effective_down + s.degraded)) for s in scenarios.scenarios)
    log.info(
        "shedding: %d of %d scenarios solved, %d reused from the cache%s",
        len(missing),
        len(problems),
        len(problems) - len(missing),
        f"; {touched} involve {sorted(in_scope)}" if in_scope else "",
    )
    table = decisions_table(scenarios.scenarios, results, problems)
    document = policy_document(scenarios.scenarios, results, problems)
    files = {
        "decisions.parquet": encode_parquet(table),
        "policy.json": encode_json(document),
        # the model again, compactly, for the client's runtime greedy on states no scenario names
        FALLBACK_FILE: encode_json(
            fallback_document(tables["services"], tables["dependencies"], tables["workloads"], levels=levels)
        ),
    }

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
        per_scenario.append(
            {
                "scenario": sc.key,
                "probability": sc.probability,
                "chosen": res.chosen,
                "objective": best.objective,
                "gap": res.gap,
                "candidates": {
                    c.info.solver: {
                        "status": c.info.status,
                        "objective": c.objective,
                        "bound": c.info.bound,
                        "time_s": c.info.time_s,
                    }
                    for c in res.candidates
                },
            }
        )
    expected_value = weighted / mass if mass else 0.0
    metrics = {
        "shedding.scenarios": float(len(problems)),
        "shedding.solved": float(len(missing)),
        "shedding.reused": float(len(problems) - len(missing)),
        "shedding.touched": float(touched),
        "shedding.expected_value_per_h": expected_value,
        "shedding.worst_gap": worst_gap if worst_gap is not None else 0.0,
        "shedding.infeasible": float(infeasible),
        **{f"shedding.wins.{k}": float(v) for k, v in wins.items()},
        **{f"shedding.time_s.{k}": v for k, v in time_by_solver.items()},
        **{
            f"shedding.objective_sum.{s}": sum(
                c.objective for r in results for c in r.candidates if c.info.solver == s and c.feasible
            )
            for s in solvers
        },
    }
    log.info(
        "shedding: %d scenarios solved; chosen %s; worst gap %s; expected value %.2f/h",
        len(problems),
        wins,
        "n/a" if worst_gap is None else f"{worst_gap:.4%}",
        expected_value,
    )
    return SolvedPolicy("shedding", files, metrics, per_scenario, infeasible, worst_gap, expected_value)
