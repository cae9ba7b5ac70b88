"""Nightly, beside shedding: the standby and routing solves and the robust tier assignment.

Why a module of its own: the families solve on the task runner while the nightly goes on
(shedding's solve, the backtest, MLflow); each solved family then takes the one publish path
of ``flows.publish``, like shedding.

- **tiers** travel inside the shedding bundle (``tiers.parquet``, ``tiers.json``): a runtime
  shedder reads them next to the per-scenario plans; their metrics go to the run as ``tiers.*``.
- **standby** and **routing** are bundles of their own (``<store>/standby``, ``<store>/routing``),
  signed, verified, registered in MLflow as ``<prefix>-standby`` / ``<prefix>-routing`` (alias
  candidate, champion when promoted) and gated like shedding: validation, every decision
  feasible, gap within ``gates.max_gap``, and no drop beyond ``gates.tolerance`` against that
  family's champion. They share shedding's MLflow run: metrics ``standby.*``/``routing.*``,
  files under ``bundle-<family>/``, the pyfunc model under ``model-<family>/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture
from prefect.logging import get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from flows.params import anneal_params
from flows.settings import Settings
from policies.scenarios.scenario_set import ScenarioSet
from tasks.solve import SolvedPolicy
from tasks.solve_families import (
    load_latency_pool,
    routing_latency_pool,
    solve_routing_policy,
    solve_standby_policy,
    solve_tier_assignment,
    store_latency_pool,
)

__all__ = [
    "FamilyRun",
    "PendingFamilies",
    "submit_families",
    "submit_latency_pool",
    "remember_latency_pool",
    "solve_cache_dir",
]


@dataclass(frozen=True)
class FamilyRun:
    """What the solve step produced: tier files for the shedding bundle, and the other families."""

    tier_files: dict[str, bytes] = field(default_factory=dict)
    tier_metrics: dict[str, float] = field(default_factory=dict)
    solved: tuple[SolvedPolicy, ...] = ()


class PendingFamilies:
    """The family solves, submitted: the run goes on (shedding's solve, MLflow) while they work.

    ``tiers()`` waits for the tier assignment only (the shedding bundle carries it);
    ``result()`` for every family. Results are taken in a fixed order, so the bytes do not
    depend on which solve ends first.
    """

    def __init__(self, tiers, solved: list) -> None:
        self._tiers, self._solved, self._run = tiers, solved, None
        self._taken = 0  # families already handed out by take_ready / take_rest, in the fixed order

    def tiers(self) -> tuple[dict[str, bytes], dict[str, float]]:
        return self._tiers.result() if self._tiers is not None else ({}, {})

    def take_ready(self) -> Iterator[SolvedPolicy]:
        """The next families in the fixed order that are solved already (none is waited for)."""
        while self._taken < len(self._solved) and self._solved[self._taken].wrapped_future.done():
            self._taken += 1
            yield self._solved[self._taken - 1].result()

    def take_while_tiers_solve(self) -> Iterator[SolvedPolicy]:
        """The next families in the fixed order as each is solved, until the tier assignment is
        (the main thread publishes them while it would otherwise only wait), then any ready."""
        while self._taken < len(self._solved) and not self._tiers_done():
            future = self._solved[self._taken]
            future.wait(timeout=0.02)
            if future.wrapped_future.done():
                self._taken += 1
                yield future.result()
        yield from self.take_ready()

    def _tiers_done(self) -> bool:
        return self._tiers is None or self._tiers.wrapped_future.done()

    def take_rest(self) -> Iterator[SolvedPolicy]:
        """The families not handed out yet, in the fixed order, each as soon as it is solved."""
        while self._taken < len(self._solved):
            self._taken += 1
            yield self._solved[self._taken - 1].result()

    def each_solved(self) -> Iterator[SolvedPolicy]:
        """The families one by one, in the fixed order, each as soon as it is solved (publish it
        while the next one still solves)."""
        for future in self._solved:
            yield future.result()

    def result(self) -> FamilyRun:
        if self._run is None:
            files, metrics = self.tiers()
            self._run = FamilyRun(files, metrics, tuple(self.each_solved()))
        return self._run


def submit_latency_pool(settings: Settings, tables: dict[str, pa.Table], *, reuse: bool = False):
    """Start routing's latency pool as soon as the checks are validated (it overlaps the fit).

    With ``reuse`` (a re-solve) and ``orchestration.resolve_latencies = "nightly"``, the pool the
    last nightly stored is returned instead: latency profiles over weeks of checks move slowly,
    and with the same pool every routing scenario the incident did not change is a cache hit.
    On a task runner other than threads (Dask) the pool is computed here, in the flow's process:
    shipping all health checks to a worker is what the pool is smaller than (distributed warned
    of a 13 MB graph on the 2-day test sample). Returns ``(pool, computed)``: a Prefect future or
    a pool (None when routing is off), and whether this run computed it (then it is kept).
    """
    if "routing" not in settings.families.enabled:
        return None, False
    if reuse and settings.orchestration.resolve_latencies == "nightly":
        stored = load_latency_pool(_pool_dir(settings))
        if stored is not None:
            get_run_logger().info("routing: latency profiles of the last nightly (snapshot %s)", stored[1][:12])
            return stored[0], False
    context = FlowRunContext.get()
    if context is not None and not isinstance(context.task_runner, ThreadPoolTaskRunner):
        return routing_latency_pool(tables["health_checks"]), True
    return routing_latency_pool.submit(tables["health_checks"]), True


def remember_latency_pool(settings: Settings, pool, *, snapshot: str) -> None:
    """Keep a pool this run computed, for the next re-solves."""
    store_latency_pool(
        _pool_dir(settings), pool.result() if isinstance(pool, PrefectFuture) else pool, snapshot=snapshot
    )


def _pool_dir(settings: Settings):
    # State, not cache: what a re-solve publishes depends on it, so clearing <state>/cache must keep it.
    return settings.state_dir / "profiles"


def solve_cache_dir(settings: Settings, family: str) -> Path | None:
    """``<state_dir>/cache/<family>`` when ``orchestration.solve_cache`` is on."""
    return settings.state_dir / "cache" / family if settings.orchestration.solve_cache else None


def submit_families(
    settings: Settings, tables: dict[str, pa.Table], scenarios: ScenarioSet, latency_pool=None
) -> PendingFamilies:
    """Submit the enabled families' solves with the configured portfolio (``[families]`` in qres.toml).

    Solves go through the solve cache like shedding's scenarios (tasks/solve_families.py). They
    run on the flow's task runner: the solvers (CP-SAT, GLOP) release the GIL, so they overlap
    each other and the rest of the run until :meth:`PendingFamilies.result` (measured: ~0.5 s
    off a re-solve).
    """
    fam = settings.families
    # The solves need the small tables only (routing gets its latency pool): on a Dask cluster
    # the health checks are then shipped once, to the pool's task, not to every family.
    if latency_pool is not None:
        tables = {name: t for name, t in tables.items() if name != "health_checks"}
    common = {"seed": settings.seed, "time_limit_s": fam.time_limit_s, "top_k": settings.solve.top_k}
    tiers = None
    if "tiers" in fam.enabled:
        tiers = solve_tier_assignment.submit(
            tables,
            scenarios,
            **common,
            tiers=fam.tiers,
            alpha=fam.tier_alpha,
            lam=fam.tier_lambda,
            cache_dir=solve_cache_dir(settings, "tiers"),
        )
    solved = []
    # Standby needs the optional sites and standby_candidates tables (imported status pages have none).
    if "standby" in fam.enabled and {"sites", "standby_candidates"} <= set(tables):
        solved.append(
            solve_standby_policy.submit(
                tables,
                scenarios,
                **common,
                solvers=fam.standby_solvers,
                anneal_params=anneal_params(settings),
                cache_dir=solve_cache_dir(settings, "standby"),
            )
        )
    if "routing" in fam.enabled:
        options = {"num_samples": fam.routing_samples, "sla_ms": fam.routing_sla_ms, "alpha": fam.routing_alpha}
        solved.append(
            solve_routing_policy.submit(
                tables,
                scenarios,
                **common,
                options=options,
                cache_dir=solve_cache_dir(settings, "routing"),
                pool=latency_pool,
            )
        )
    return PendingFamilies(tiers, solved)
