"""Scenarios by coverage: every observed state keeps its scenario and its mass; unseen single outages go."""

from __future__ import annotations

import numpy as np
import pytest

from policies.graph import hard_dependents, root_down_set
from policies.model.failure_model import DOWN, fit_failure_model
from policies.scenarios.scenario_set import NORMAL_KEY, build_scenarios, scenario_key
from policies.telemetry.ingest import conform_tables, load_telemetry


@pytest.fixture(scope="module")
def fitted(small_sample):
    tables = conform_tables(load_telemetry(str(small_sample)).tables)
    return fit_failure_model(tables["services"], tables["dependencies"], tables["health_checks"]), tables


def _observed_down_keys(model, dependencies) -> dict[str, int]:
    """Windows per root down set, computed here from the states (degraded read as up)."""
    edges = zip(*(dependencies.column(c).to_pylist() for c in ("service_id", "depends_on", "hard")))
    dependents = hard_dependents(edges)
    names = np.asarray(model.services, dtype=object)
    out: dict[str, int] = {}
    for row in model.states:
        key = scenario_key(root_down_set(names[row == DOWN], dependents))
        out[key] = out.get(key, 0) + 1
    return out


@pytest.mark.parametrize("target_mass", [1.0, 0.9])
def test_coverage_keeps_every_observed_state_and_the_mass(fitted, target_mass: float) -> None:
    model, tables = fitted
    kw = {"services": tables["services"], "target_mass": target_mass, "include_degraded": False}
    every = build_scenarios(model, tables["dependencies"], single_outages="all", **kw)
    covered = build_scenarios(model, tables["dependencies"], single_outages="observed", **kw)
    by_key = {s.key: s for s in covered.scenarios}
    observed = _observed_down_keys(model, tables["dependencies"])
    n_w = model.states.shape[0]
    kept_mass = sum(n for k, n in observed.items() if k in by_key) / n_w
    if target_mass == 1.0:
        assert set(observed) <= set(by_key)  # every state the history shows has its own plan
        assert kept_mass == pytest.approx(1.0)
    assert covered.covered_mass == every.covered_mass >= target_mass - 1e-9
    assert kept_mass >= covered.covered_mass - 1e-9
    for key, n in observed.items():  # an observed state keeps its empirical probability
        if key in by_key and key != NORMAL_KEY:
            assert by_key[key].probability == pytest.approx(n / n_w)
    # coverage only drops scenarios, and only single outages nobody observed
    dropped = {s.key: s for s in every.scenarios if s.key not in by_key}
    assert set(by_key) <= {s.key for s in every.scenarios}
    assert dropped and all(s.source == "single" and s.key not in observed for s in dropped.values())
    assert covered.info["n_single_added"] == every.info["n_single_added"] - len(dropped)


def test_single_outages_must_be_named(fitted) -> None:
    model, tables = fitted
    with pytest.raises(ValueError, match="single_outages"):
        build_scenarios(model, tables["dependencies"], single_outages="some")
