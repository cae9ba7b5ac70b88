"""Backtest task: replay held-out incidents for the gates, MLflow metrics and the run's HTML report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from policies.backtest.run import BacktestConfig, run_backtest
from tasks.solve import solve_problems
from tasks.support.progress import progress_step
from tasks.support.solve_cache import entry_paths, load_cached_results, store_cached_results

__all__ = ["backtest_policy", "backtest_metrics", "StoredReplays", "cached_solve"]


@dataclass(frozen=True)
class StoredReplays:
    """The previous run's incident figures in ``<state_dir>/cache/backtest``: HMAC'd JSON like the
    solve cache (a tampered entry is replayed again), pruned to the last run's incidents."""

    cache_dir: Path

    def load(self, keys: Sequence[str]) -> dict[str, dict]:
        return {k: v for k, v in load_cached_results(self.cache_dir, keys).items() if isinstance(v, dict)}

    def store(self, figures: Mapping[str, dict], keep: Sequence[str]) -> None:
        store_cached_results(self.cache_dir, dict(figures))
        kept = set(keep)
        for entry in entry_paths(self.cache_dir):
            if entry.stem not in kept:
                entry.unlink(missing_ok=True)


def cached_solve(caches: Mapping[str, Path | None]):
    """The trained policy's solves through the nightly's solve cache (``caches``: folder per family)."""

    def solve(name: str, problems, params):
        return solve_problems(name, problems, **params, cache_dir=caches.get(name))[0]

    return solve


@task(name="backtest", cache_policy=NO_CACHE)
def backtest_policy(
    tables: dict[str, pa.Table], cfg: BacktestConfig, caches: Mapping[str, Path | None] | None = None
) -> dict:
    """Fit on the past, replay later incidents against the baselines and the oracle (see policies/backtest/run.py).

    ``caches`` (folder per family, None: off): the past's solves answer from the nightly's
    ``shedding``/``horizon`` solve caches, and incidents unchanged since the last run take its
    figures from ``backtest`` (policies/backtest/reuse.py); each gives what a cold run gives.
    """
    caches = caches or {}
    reuse = StoredReplays(Path(caches["backtest"])) if caches.get("backtest") is not None else None
    solve = cached_solve(caches) if caches.get("shedding") is not None else None
    with progress_step("backtest", 1) as advance:
        # A refusal must not stop the nightly. No standby: these figures gate the shedding bundle, which
        # another family's placement must not move (``qres backtest`` replays it; docs/backtest.md).
        result = run_backtest(tables, replace(cfg, refuse_empty=False), standby=(), reuse=reuse, solve=solve)
        advance(1)
    if reuse is not None:
        get_run_logger().info("backtest: %d incidents replayed, %d reused", result["replayed"], result["reused"])
    if result.get("refused"):
        get_run_logger().warning("backtest: %s", result["refused"])
    pub = result["overall"].get("published", {})
    get_run_logger().info(
        "backtest: %d held-out incidents; published keeps %s of the oracle's value",
        result["n_incidents"],
        "n/a" if pub.get("share") is None else f"{pub['share']:.2%}",
    )
    return result


_FIGURES = (
    "share",
    "loss",
    "cvar",
    "avoidable_loss",
    "avoidable_cvar",
    "recovered",
    "switch_cost",
    "decision_changes",
    "min_share_violation_min",
    "switch_min_median",
    "kl_mean",
)


def backtest_metrics(result: dict) -> dict[str, float]:
    """Flat MLflow metrics: ``backtest.<figure>.<policy>`` and the incident counts."""
    out = {"backtest.incidents": float(result["n_incidents"]), "backtest.impacting": float(result["n_impacting"])}
    for name, o in result["overall"].items():
        for fig in _FIGURES:
            if o.get(fig) is not None:
                out[f"backtest.{fig}.{name}"] = float(o[fig])
    return out
