"""Estimate: the failure model and the scenario set, wrapped for Prefect."""

from __future__ import annotations

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from policies.failure_model import FailureModel, fit_failure_model
from policies.scenarios import ScenarioSet, build_scenarios

__all__ = ["estimate_failure_model", "build_scenario_set"]


@task(name="failure-model", cache_policy=NO_CACHE)
def estimate_failure_model(tables: dict[str, pa.Table], *, window_min: int, hysteresis_windows: int,
                           credible: float) -> FailureModel:
    """Per-dependency P(down) with credible intervals, recovery times and co-failure."""
    model = fit_failure_model(
        tables["services"], tables["dependencies"], tables["health_checks"], tables.get("incidents"),
        window_min=window_min, hysteresis_windows=hysteresis_windows, credible=credible,
    )
    down = model.per_dependency[model.per_dependency["outages"] > 0]
    get_run_logger().info(
        "failure model: %d services over %d windows, %d with outages, %d co-failing pairs",
        len(model.services), model.states.shape[0], len(down), len(model.co_failure),
    )
    return model


@task(name="scenarios", cache_policy=NO_CACHE)
def build_scenario_set(model: FailureModel, dependencies: pa.Table, *, target_mass: float) -> ScenarioSet:
    """Empirical patterns covering ``target_mass`` plus every single-dependency outage."""
    scenarios = build_scenarios(model, dependencies, target_mass=target_mass)
    get_run_logger().info(
        "scenarios: %d kept, covering %.4f of the probability mass (target %.4f)",
        len(scenarios.scenarios), scenarios.covered_mass, scenarios.target_mass,
    )
    return scenarios
