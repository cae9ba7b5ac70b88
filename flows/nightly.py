"""The nightly pipeline: telemetry in, verified bundles of every family out.

ingest -> validate -> failure model -> scenarios -> solve -> track -> gates -> publish.
The flow body only wires the stages (``flows.stages``) and the one publish path
(``flows.publish``); every decision lives in ``policies/``.
"""

from __future__ import annotations

import gc
from dataclasses import replace
from functools import partial
from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.utilities.annotations import quote

from flows.environment import configure_environment
from flows.families import (
    PendingFamilies,
    remember_latency_pool,
    solve_cache_dir,
    submit_families,
    submit_latency_pool,
)
from flows.params import anneal_params, backtest_config
from flows.publish import BacktestGate, FamilyOutcome, promote_families, publish_family
from flows.records import final_reports, final_tags, record_report, run_artifacts, run_identity, run_metrics
from flows.settings import Settings, load_settings
from flows.stages import build_scenarios, fit_model, ingest_and_validate, run_manifest
from flows.summary import RunSummary
from policies.model.failure_model import FailureModel
from policies.scenarios.scenario_set import ScenarioSet
from policies.shedding.anticipation import HorizonParams
from policies.telemetry.mapped import release_pages
from qres_client.bundle import BundleVerificationError, read_latest
from tasks.backtest import backtest_policy
from tasks.estimate import health_file
from tasks.solve import SolvedPolicy, solve_shedding_policy
from tasks.support.locks import RUN_LIMIT, file_lock, hold_limit, publish_lock
from tasks.support.preflight import check_bundle_store, check_sources, check_tracking_store, store_outage
from tasks.support.timeouts import with_timeout
from tasks.support.tracking_warmup import start_warming, wait_warm
from tasks.track import TrackingTarget, finish_run, log_run_results, start_run, tracking_outage

__all__ = ["nightly", "run_nightly"]


def run_nightly(
    settings: Settings,
    *,
    kind: str = "nightly",
    incremental: bool = False,
    scope: tuple[str, ...] = (),
    skip_unchanged: bool = False,
) -> RunSummary:
    """The pipeline body; ``nightly`` is its Prefect flow wrapper, ``flows.resolve`` calls it with
    ``kind="resolve", incremental=True`` (validate only new files; see tasks/validation/incremental.py).

    Every step runs with ``orchestration.step_timeout_s``; the family solves, which run
    on worker threads Prefect cannot interrupt, are bounded by their solvers' time limits.
    """
    # Hand what is alive now (modules, classes, library caches: ~0.5-0.9M objects) to the
    # permanent generation: the cyclic collector stops rescanning it, and a full collection of
    # that heap took 0.5-0.7 s, one or two per run (measured).
    gc.freeze()
    init_lock, wait_s = _preflight(settings, incremental), settings.orchestration.run_lock_wait_s
    latest_before = _latest_pointers(settings.store_dir)
    step = partial(with_timeout, seconds=settings.orchestration.step_timeout_s)
    data = ingest_and_validate(settings, incremental=incremental)
    pool, pool_computed = submit_latency_pool(settings, data.tables, reuse=incremental)  # routing's, beside the fit
    model = fit_model(settings, data)
    scenarios = build_scenarios(settings, model, data.tables)
    pending = submit_families(settings, data.tables, scenarios, pool)  # tiers, standby, routing: overlap the rest
    solved = _solve_shedding(settings, data.tables, scenarios, scope, model)
    backtest = (
        step(backtest_policy)(data.tables, backtest_config(settings), _backtest_caches(settings))
        if settings.backtest.enabled
        else None
    )
    release_pages()  # the backtest read the mapped day files: drop their pages
    target = TrackingTarget(settings.tracking_uri, settings.mlflow.experiment, settings.artifact_root)
    # A new SQLite tracking store is created (schema migrations) by its first client: runs that
    # start together on one state folder must not both create it. The warm-up holds that lock too.
    wait_warm()
    with file_lock(init_lock, timeout_s=wait_s):
        run_id = _tracked(settings, lambda: step(start_run)(target, **run_identity(settings, data, kind)))
    published = False
    try:
        run = (data, model, scenarios, solved, pending, backtest)
        outcomes, shed, report = _publish_all(settings, target, run_id, kind, run, step, skip_unchanged)
        published = True
        if pool_computed:
            remember_latency_pool(settings, pool, snapshot=data.snapshot)
        step(finish_run)(target, run_id, tags=final_tags(shed), json_artifacts=final_reports(settings, shed))
    except BaseException as exc:
        _mark_failed(target, run_id)
        outage = tracking_outage(exc, settings.tracking_uri, published=published) or store_outage(
            exc, settings.store_dir, moved=_moved(settings.store_dir, latest_before)
        )
        if outage is not None:
            raise outage from None
        raise
    summary = _summary(settings, kind, data, model, scenarios, solved, run_id, shed, outcomes, report)
    create_markdown_artifact(summary.to_markdown(), key=f"qres-{kind}-summary", description=f"qresilience {kind} run")
    return summary


def _preflight(settings: Settings, incremental: bool) -> Path:
    """Fail in seconds, before any work, if a source or store is down; then start loading MLflow
    beside the ingest (tasks/support/tracking_warmup.py). Returns the tracking store's init lock."""
    if not incremental:  # a re-solve reads what the nightly pulled (flows/stages.py)
        check_sources(settings.sources)
    check_tracking_store(settings.tracking_uri)
    check_bundle_store(settings.store_dir)
    init_lock = settings.state_dir / ".mlflow-init.lock"
    wait_s = settings.orchestration.run_lock_wait_s
    start_warming(settings.tracking_uri, settings.mlflow.experiment, init_lock, timeout_s=wait_s)
    return init_lock


def _backtest_caches(settings: Settings) -> dict:
    """The backtest reuses the previous run's replay and, for its trained policy, this run's solves."""
    return {name: solve_cache_dir(settings, name) for name in ("backtest", "shedding", "horizon")}


def _latest_pointers(store: Path) -> dict[str, str | None] | None:
    """Every family's LATEST in the store (None when the store cannot be read)."""
    if not Path(store).is_dir():
        return None
    try:
        return {p.parent.name: read_latest(store, p.parent.name) for p in sorted(Path(store).glob("*/LATEST"))}
    except (OSError, BundleVerificationError):
        return None


def _moved(store: Path, before: dict[str, str | None] | None) -> list[str] | None:
    """The families whose LATEST is not what it was at the run's start (None: not readable now)."""
    now = _latest_pointers(store)
    if now is None or before is None:
        return None
    return sorted(f for f, v in now.items() if v is not None and before.get(f) != v)


def _tracked(settings: Settings, call):
    """``call()``, with a tracking outage turned into one readable line."""
    try:
        return call()
    except Exception as exc:
        outage = tracking_outage(exc, settings.tracking_uri, published=False)
        if outage is not None:
            raise outage from None
        raise


def _mark_failed(target: TrackingTarget, run_id: str) -> None:
    """Best effort: a failed run is marked so in MLflow, unless MLflow is what failed."""
    try:
        finish_run.fn(target, run_id, tags={"qres.gates": "error"}, json_artifacts={}, failed=True)
    except Exception:  # noqa: BLE001 - the original error is the one to report
        return


def _publish_all(settings, target, run_id, kind, run, step, skip_unchanged):
    """Store and register every family, then promote them together, all under the publish lock."""
    data, model, scenarios, solved, pending, backtest = run
    with publish_lock(settings.store_dir, timeout_s=settings.orchestration.run_lock_wait_s):
        metrics = {**solved.metrics, **run_metrics(data, model, scenarios, backtest)}
        artifacts = run_artifacts(data, model, metrics, solved)  # quoted: plain data, not walked for futures
        step(log_run_results)(target, run_id, **{name: quote(value) for name, value in artifacts.items()})
        manifest = run_manifest(settings, data, scenarios)
        publish = partial(
            publish_family, settings, target, run_id, run_manifest=manifest, skip_unchanged=skip_unchanged
        )
        publish = partial(publish, validation_passed=data.report.success)
        # Families solved while the tiers still solve are stored meanwhile; the rest after shedding.
        outcomes = [publish(sp) for sp in pending.take_while_tiers_solve()]
        shedding = _with_tiers_and_health(settings, solved, pending, model)
        report = record_report(settings, step, target, run_id, kind, backtest, model, scenarios, shedding, pending)
        share = (backtest or {}).get("overall", {}).get("published", {}).get("share")
        gate = BacktestGate(share, settings.backtest.min_share, settings.backtest.tolerance)
        shed = publish(shedding, manifest_metrics=metrics, backtest=gate)
        outcomes += [publish(sp) for sp in pending.take_rest()]
        promoted = promote_families(settings, target, [shed, *outcomes])
    return promoted[1:], promoted[0], report


def _solve_shedding(
    settings: Settings, tables: dict, scenarios: ScenarioSet, scope: tuple[str, ...], model: FailureModel
) -> SolvedPolicy:
    solve = settings.solve
    horizon = HorizonParams(steps=solve.horizon_steps, hold_s=solve.hold_s) if solve.time_coupled else None
    return solve_shedding_policy(
        tables,
        scenarios,
        seed=settings.seed,
        time_limit_s=solve.time_limit_s,
        solvers=solve.solvers,
        levels=solve.levels,
        top_k=solve.top_k,
        anneal_params=anneal_params(settings),
        cache_dir=solve_cache_dir(settings, "shedding"),
        chunk_size=settings.orchestration.solve_chunk,
        timeout_s=settings.orchestration.task_timeout_s,
        scope=scope,
        model=model,
        horizon=horizon,
        horizon_solvers=solve.horizon_solvers,
        horizon_cache_dir=solve_cache_dir(settings, "horizon"),
    )


def _with_tiers_and_health(
    settings: Settings, solved: SolvedPolicy, pending: PendingFamilies, model: FailureModel
) -> SolvedPolicy:
    """Shedding's bundle also carries the tier assignment and the runtime health scores."""
    tier_files, tier_metrics = pending.tiers()
    health = health_file(model, horizon_min=settings.model.health_horizon_min)
    return replace(solved, files={**solved.files, **tier_files, **health}, metrics={**solved.metrics, **tier_metrics})


def _example_outage(scenarios: ScenarioSet) -> str:
    """A dependency of the likeliest outage scenario, for the summary's `qres decide --down` hint."""
    outages = [s for s in scenarios.scenarios if s.down and s.source != "fallback"]
    return max(outages, key=lambda s: (s.probability, s.key)).down[0] if outages else ""


def _summary(
    settings, kind, data, model, scenarios, solved, run_id, shed: FamilyOutcome, outcomes, report
) -> RunSummary:
    per_dep = model.per_dependency
    order = {name: i for i, name in enumerate(("standby", "routing"))}
    return RunSummary(
        rows_validated=data.report.rows_validated,
        tables=data.telemetry.rows,
        dependencies=len(per_dep),
        dependencies_with_outages=int((per_dep["outages"] > 0).sum()),
        scenarios=len(scenarios.scenarios),
        covered_mass=scenarios.covered_mass,
        target_mass=scenarios.target_mass,
        objective_by_solver={  # the solvers that ran (the annealer does not where CP-SAT proved the optimum)
            s: solved.metrics.get(f"shedding.objective_sum.{s}", 0.0)
            for s in settings.solve.solvers
            if f"shedding.time_s.{s}" in solved.metrics
        },
        chosen={k.rsplit(".", 1)[1]: int(v) for k, v in solved.metrics.items() if k.startswith("shedding.wins.")},
        worst_gap=solved.worst_gap,
        expected_value_per_h=solved.expected_value,
        published=shed.published,
        bundle_path=shed.bundle_path,
        bundle_version=shed.stored_version if shed.published or shed.unchanged else None,
        unchanged=shed.unchanged,
        mlflow_run_id=run_id,
        model_version=shed.model_version,
        promoted=shed.promoted,
        gates=shed.gates,
        snapshot=data.snapshot,
        raw_transitions=model.info["raw_transitions"],
        transitions_removed=model.info["transitions_removed"],
        kind=kind,
        scenarios_solved=int(solved.metrics.get("shedding.solved", len(scenarios.scenarios))),
        tracking_uri=settings.tracking_uri,
        families={o.policy: o.as_dict() for o in sorted(outcomes, key=lambda o: order[o.policy])},
        report_path=report,
        example_down=_example_outage(scenarios),
    )


@flow(name="qres-nightly", log_prints=False, validate_parameters=True)
def nightly(
    data: str | None = None, store: str | None = None, seed: int | None = None, config: str | None = None
) -> dict:
    """Run the whole pipeline once; settings from qres.toml / QRES_* with these overrides."""
    settings = load_settings(config, data_dir=data, store_dir=store, seed=seed)
    configure_environment(settings.state_dir, settings.bundle.key_dir)
    with hold_limit(RUN_LIMIT, timeout_s=settings.orchestration.run_lock_wait_s):  # never beside a re-solve
        return run_nightly(settings).as_dict()
