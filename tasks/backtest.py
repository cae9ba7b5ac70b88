"""Backtest task: replay held-out incidents for the gates, MLflow metrics and the run's HTML report."""

from __future__ import annotations

from dataclasses import replace

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from policies.backtest.run import BacktestConfig, run_backtest
from tasks.support.progress import progress_step

__all__ = ["backtest_policy", "backtest_metrics"]


@task(name="backtest", cache_policy=NO_CACHE)
def backtest_policy(tables: dict[str, pa.Table], cfg: BacktestConfig) -> dict:
    """Fit on the past, replay later incidents against the baselines and the oracle (see policies/backtest_run)."""
    with progress_step("backtest", 1) as advance:
        # A refusal must not stop the nightly. No standby: these figures gate the shedding bundle, which
        # another family's placement must not move (``qres backtest`` replays it; docs/backtest.md).
        result = run_backtest(tables, replace(cfg, refuse_empty=False), standby=())
        advance(1)
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
