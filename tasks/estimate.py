"""Estimate: the failure model, the scenario set and the health-score file, wrapped for Prefect."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from policies.model.failure_model import FailureModel, fit_failure_model
from policies.model.window_grid import WindowGrid, window_grid
from policies.scenarios.scenario_set import ScenarioSet, build_scenarios
from policies.telemetry.mapped import release_pages
from qres_client.bundle import encode_json
from qres_client.health import HEALTH_FILE, build_health_document
from tasks.support.solve_cache import entry_paths, solve_cached

__all__ = ["estimate_failure_model", "health_check_grids", "build_scenario_set", "health_file", "scenario_provenance"]

_GRID_FORMAT = "window-grid-v1"  # bump when WindowGrid or window_grid changes: old entries become misses


def health_check_grids(
    files: Sequence[tuple[str | None, pa.Table]], *, window_min: int, cache_dir: Path | None
) -> list[WindowGrid] | None:
    """The window grid of each health-check file, from the cache by its sha256 or computed and
    stored (files without a sha256, e.g. rows left after quarantine, are computed only).
    None as soon as one file has no grid: the fit then scans the checks."""
    grids, keys = [], set()
    for sha, table in files:
        key = hashlib.sha256(f"{_GRID_FORMAT}:{sha}:{int(window_min)}".encode()).hexdigest() if sha else None
        if key is None:
            grid = window_grid(table, window_min)
        else:
            grid, _ = solve_cached(cache_dir, key, partial(window_grid, table, window_min))
            keys.add(key)
        release_pages()  # one mapped day file resident at a time (policies/telemetry/mapped.py)
        if grid is None:
            return None
        grids.append(grid)
    _prune(cache_dir, keep=keys)
    return grids


def _prune(cache_dir: Path | None, *, keep: set[str]) -> None:
    """Drop the grids of files the snapshot no longer has (a changed day file leaves one behind)."""
    if cache_dir is None or not Path(cache_dir).is_dir():
        return
    for entry in entry_paths(cache_dir):
        if entry.stem not in keep:
            entry.unlink(missing_ok=True)


@task(name="failure-model", cache_policy=NO_CACHE)
def estimate_failure_model(
    tables: dict[str, pa.Table],
    *,
    window_min: int,
    hysteresis_windows: int,
    credible: float,
    hysteresis_min: float = 0.0,
    agreement: str = "majority",
    alpha: float = 0.05,
    health_files: Sequence[tuple[str | None, pa.Table]] | None = None,
    grid_cache: Path | None = None,
) -> FailureModel:
    """Per-dependency P(down) with credible intervals, recovery times and co-failure.

    ``health_files``: the (sha256, table) files ``tables["health_checks"]`` is made of; their
    window grids come from ``grid_cache``, so a re-solve scans only the new day's checks.
    """
    grids = (
        None if health_files is None else health_check_grids(health_files, window_min=window_min, cache_dir=grid_cache)
    )
    model = fit_failure_model(
        tables["services"],
        tables["dependencies"],
        tables["health_checks"],
        tables.get("incidents"),
        window_min=window_min,
        hysteresis_windows=hysteresis_windows,
        hysteresis_min=hysteresis_min,
        agreement=agreement,
        credible=credible,
        alpha=alpha,
        grids=grids,
    )
    down = model.per_dependency[model.per_dependency["outages"] > 0]
    get_run_logger().info(
        "failure model: %d services over %d windows, %d with outages, %d co-failing pairs (%d significant); "
        "hysteresis removed %d of %d raw transitions",
        len(model.services),
        model.states.shape[0],
        len(down),
        len(model.co_failure),
        int(model.co_failure["significant"].sum()),
        model.info["transitions_removed"],
        model.info["raw_transitions"],
    )
    return model


@task(name="scenarios", cache_policy=NO_CACHE)
def build_scenario_set(
    model: FailureModel,
    tables: dict[str, pa.Table],
    *,
    target_mass: float,
    seed: int = 0,
    sample_max: int = 0,
    sample_min_probability: float = 1e-7,
    sample_params: dict | None = None,
    what_if: tuple = (),
    single_outages: str = "observed",
) -> ScenarioSet:
    """Empirical patterns covering ``target_mass``, single-dependency outages (``single_outages``:
    the observed ones, or all), multi-failures sampled from the joint model, and the what-ifs."""
    scenarios = build_scenarios(
        model,
        tables["dependencies"],
        target_mass=target_mass,
        services=tables["services"],
        seed=seed,
        sample_max=sample_max,
        sample_min_probability=sample_min_probability,
        sample_params=sample_params,
        what_if=[w if isinstance(w, dict) else w.model_dump() for w in what_if],
        single_outages=single_outages,
    )
    get_run_logger().info(
        "scenarios: %d kept (%s), covering %.4f of the probability mass (target %.4f)",
        len(scenarios.scenarios),
        scenarios.info["by_source"],
        scenarios.covered_mass,
        scenarios.target_mass,
    )
    return scenarios


def health_file(model: FailureModel, *, horizon_min: float) -> dict[str, bytes]:
    """``{"health.json": bytes}``: the health-score parameters a runtime service needs."""
    rows = model.per_dependency[["service_id", "failure_rate_per_min", "recovery_rate_per_min", "p_down"]]
    doc = build_health_document(rows.to_dict("records"), horizon_min=horizon_min, window_min=model.window_min)
    return {HEALTH_FILE: encode_json(doc)}


def scenario_provenance(scenarios: ScenarioSet) -> dict:
    """What the manifest says about where the scenarios came from."""
    return {
        "count": len(scenarios.scenarios),
        "covered_mass": scenarios.covered_mass,
        "target_mass": scenarios.target_mass,
        "by_source": scenarios.info["by_source"],
        "sampled_mass": scenarios.info["sampled_mass"],
        "what_if": sorted(s.source.split(":", 1)[1] for s in scenarios.scenarios if s.source.startswith("what-if:")),
    }
