"""Solve: the one way the pipeline solves a family's problems (cached, chunked), and the shedding step.

The solving itself is :meth:`policies.solve.family.Family.solve_each` (the path the backtest and
``qres solve`` take too, so they repeat the nightly's answers); this module only adds the
pipeline's concerns. Problems whose content did not change come from a content-addressed cache
(:mod:`tasks.support.solve_cache`, ``cache_dir`` = ``<state_dir>/cache/<family>``, None = off);
shedding's many scenarios are solved in chunks submitted to the flow's task runner (threads by
default, Dask with ``qres run --runner dask``), which keeps Prefect's per-task cost (~15 ms) small
next to the work. Results are put back in problem order, so the bundle bytes do not depend on the
runner, the chunking or the cache. The standby, routing and tier steps, which the families flow
runs beside shedding, are in :mod:`tasks.solve_families`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
from prefect.logging import get_run_logger

from policies.families import family
from policies.model.failure_model import FailureModel
from policies.scenarios.scenario_set import ScenarioSet
from policies.shedding.anticipation import HorizonParams, detection_delay_min, plan_over_time
from policies.shedding.policy import build_shedding_problems, shedding_files
from policies.solve.anneal import AnnealParams
from policies.solve.digest import problem_groups
from policies.solve.portfolio import PortfolioResult, rekeyed
from policies.solve.result import solve_record
from tasks.solve_chunks import solve_in_chunks
from tasks.support.progress import progress_step
from tasks.support.solve_cache import content_cache_key, load_cached_results, store_cached_results

__all__ = [
    "SolvedPolicy",
    "solve_problems",
    "summarize_results",
    "solve_shedding_policy",
    "DEFAULT_CHUNK_SIZE",
]

DEFAULT_CHUNK_SIZE = 16


@dataclass(frozen=True)
class SolvedPolicy:
    """A solved policy family: the bundle files plus what tracking and gates need."""

    policy: str
    files: dict[str, bytes]
    metrics: dict[str, float]
    solvers: list[dict] = field(default_factory=list)  # per problem: its provenance record (solve_record)
    infeasible: int = 0
    worst_gap: float | None = None
    expected_value: float = 0.0


def solve_problems(
    name: str,
    problems: Sequence[Any],
    *,
    seed: int,
    time_limit_s: float,
    top_k: int,
    solvers: Sequence[str] | None = None,
    anneal: AnnealParams | None = None,
    cache_dir: Path | None = None,
    chunk_size: int | None = None,
    timeout_s: float | None = None,
) -> tuple[list[PortfolioResult], int]:
    """(every problem's result in order, how many were solved rather than reused from the cache).

    Equal problems (same content under different keys, :func:`problem_groups`) are solved once
    and the answer is shared, renamed to each key: exact, since a problem's seed comes from its
    content. With ``chunk_size`` the misses are solved in chunks on the flow's task runner (so
    this must run inside a flow); without, here.
    """
    fam = family(name)
    params = {"seed": seed, "time_limit_s": time_limit_s, "solvers": solvers, "anneal": anneal, "top_k": top_k}
    key_settings = {
        "time_limit_s": time_limit_s,
        "solvers": list(solvers or fam.default_solvers),
        "top_k": top_k,
        "anneal": anneal.as_dict() if anneal else None,
    }
    groups = problem_groups(problems)
    keys = [content_cache_key(name, problems[g[0]], seed=seed, settings=key_settings) for g in groups]
    cached = load_cached_results(cache_dir, keys)
    missing = [i for i, k in enumerate(keys) if k not in cached]
    todo = [problems[groups[i][0]] for i in missing]
    if chunk_size is None:
        fresh = fam.solve_each(todo, **params)
    else:
        with progress_step(f"solve {name}", len(todo)) as advance:
            fresh = solve_in_chunks(
                name, todo, chunk_size=max(1, chunk_size), timeout_s=timeout_s, advance=advance, **params
            )
    solved_now = {keys[i]: r for i, r in zip(missing, fresh, strict=True)}
    store_cached_results(cache_dir, solved_now)
    out: list[PortfolioResult | None] = [None] * len(problems)
    for g, k in zip(groups, keys, strict=True):
        answer = cached.get(k) or solved_now[k]
        for i in g:
            out[i] = rekeyed(answer, str(problems[i].key))
    return out, len(todo)


def summarize_results(
    results: Sequence[PortfolioResult], problems: Sequence[Any], feasible: Callable, probabilities: Sequence[float]
) -> tuple[list[dict], int, float | None, float]:
    """(provenance records, infeasible chosen decisions, worst gap, probability-weighted objective).

    Every chosen decision is re-checked against the hard constraints, independently of the
    solvers' own claims: the "feasible" gate counts these.
    """
    records = [solve_record(r, probability=pr) for r, pr in zip(results, probabilities, strict=True)]
    infeasible = sum(not feasible(p, r.best.solution) for p, r in zip(problems, results, strict=True))
    gaps = [r.gap for r in results if r.gap is not None]
    mass = sum(pr for pr in probabilities if pr > 0)
    weighted = sum(pr * r.best.objective for r, pr in zip(results, probabilities) if pr > 0)
    return records, infeasible, max(gaps, default=None), weighted / mass if mass else 0.0


def solve_shedding_policy(
    tables: dict[str, pa.Table],
    scenarios: ScenarioSet,
    *,
    seed: int,
    time_limit_s: float,
    solvers: tuple[str, ...],
    levels: int,
    top_k: int,
    anneal_params: AnnealParams,
    cache_dir: Path | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    timeout_s: float | None = None,
    scope: Sequence[str] = (),
    model: FailureModel | None = None,
    horizon: HorizonParams | None = None,
    horizon_solvers: tuple[str, ...] = ("greedy", "cpsat"),
    horizon_cache_dir: Path | None = None,
) -> SolvedPolicy:
    """One shedding problem per scenario, solved (or reused) in chunks, exported.

    Must run inside a flow (chunks are submitted to its task runner). ``scope`` only
    labels the run: the scenarios that involve those dependencies are counted as touched.
    With ``model`` and ``horizon`` every observed state also gets its time-coupled plan
    (:func:`policies.shedding.anticipation.plan_over_time`, family ``horizon``), which the
    bundle's decisions then carry (``act_after_s``, ``hold_s``).
    """
    log = get_run_logger()
    sc = scenarios.scenarios
    problems = build_shedding_problems(
        tables["services"], tables["dependencies"], tables["workloads"], sc, levels=levels
    )
    results, solved = solve_problems(
        "shedding",
        problems,
        seed=seed,
        time_limit_s=time_limit_s,
        solvers=solvers,
        top_k=top_k,
        anneal=anneal_params,
        cache_dir=cache_dir,
        chunk_size=chunk_size,
        timeout_s=timeout_s,
    )
    in_scope = set(scope)
    touched = sum(bool(in_scope & set(s.effective_down + s.degraded)) for s in sc)
    log.info(
        "shedding: %d of %d scenarios solved, %d reused from the cache%s",
        solved,
        len(problems),
        len(problems) - solved,
        f"; {touched} involve {sorted(in_scope)}" if in_scope else "",
    )
    timing, horizon_metrics = None, {}
    if model is not None and horizon is not None:
        solve = partial(
            _solve_horizon,
            seed=seed,
            time_limit_s=time_limit_s,
            solvers=horizon_solvers,
            top_k=top_k,
            anneal=anneal_params,
            cache_dir=horizon_cache_dir,
            chunk_size=chunk_size,
            timeout_s=timeout_s,
        )
        timing, hp, hr = plan_over_time(model, sc, problems, results, tables["workloads"], horizon, solve)
        horizon_metrics = _horizon_metrics(timing, hr)
        log.info(
            "shedding: %d states planned over time; %d wait before switching; +%.2f over the live rule",
            len(hp),
            int(horizon_metrics["shedding.horizon.waiting_states"]),
            horizon_metrics["shedding.horizon.gain_over_greedy"],
        )
    files = shedding_files(
        tables,
        sc,
        problems,
        results,
        levels=levels,
        timing=timing,
        hold_s=horizon.hold_s if horizon else 0.0,
        delay_min=detection_delay_min(model) if timing is not None else None,
    )
    fam = family("shedding")
    records, infeasible, worst_gap, expected = summarize_results(
        results, problems, fam.is_feasible, [s.probability for s in sc]
    )
    wins: dict[str, int] = {}
    time_by_solver: dict[str, float] = {}
    for res in results:
        wins[res.chosen] = wins.get(res.chosen, 0) + 1
        for c in res.candidates:
            time_by_solver[c.info.solver] = time_by_solver.get(c.info.solver, 0.0) + c.info.time_s
    metrics = {
        "shedding.scenarios": float(len(problems)),
        "shedding.solved": float(solved),
        "shedding.reused": float(len(problems) - solved),
        "shedding.touched": float(touched),
        "shedding.expected_value_per_h": expected,
        "shedding.worst_gap": worst_gap if worst_gap is not None else 0.0,
        "shedding.infeasible": float(infeasible),
        **{f"shedding.wins.{k}": float(v) for k, v in wins.items()},
        **{f"shedding.time_s.{k}": v for k, v in time_by_solver.items()},
        **horizon_metrics,
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
        expected,
    )
    return SolvedPolicy("shedding", files, metrics, records, infeasible, worst_gap, expected)


def _solve_horizon(problems: list, **params: Any) -> list[PortfolioResult]:
    return solve_problems("horizon", problems, **params)[0]


def _horizon_metrics(timing: dict, results: Sequence[PortfolioResult]) -> dict[str, float]:
    """How much the time-coupled plans differ from the live rule (greedy is always a candidate)."""
    gain, time_s = 0.0, {}
    for r in results:
        greedy = [c.objective for c in r.candidates if c.info.solver == "greedy" and c.feasible]
        gain += r.best.objective - greedy[0] if greedy else 0.0
        for c in r.candidates:
            time_s[c.info.solver] = time_s.get(c.info.solver, 0.0) + c.info.time_s
    return {
        "shedding.horizon.states": float(len(results)),
        "shedding.horizon.waiting_states": float(sum(bool((t.act_after_s > 0).any()) for t in timing.values())),
        "shedding.horizon.gain_over_greedy": gain,
        **{f"shedding.horizon.time_s.{k}": v for k, v in time_s.items()},
    }
