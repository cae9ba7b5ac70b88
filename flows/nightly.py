"""The nightly pipeline: telemetry in, a verified shedding bundle out.

ingest -> validate -> failure model -> scenarios -> solve -> track -> gates -> publish.
The flow body only wires tasks; every decision lives in ``policies/``.
"""

from __future__ import annotations

import gc
import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger
from prefect.runtime import flow_run

from flows.environment import configure_environment
from flows.families import FAMILY_ORDER, publish_families, remember_latency_pool, submit_families, submit_latency_pool
from flows.settings import Settings, backtest_config, load_settings
from flows.summary import family_line
from policies.gates import evaluate_gates
from policies.telemetry.ingest import conform_tables, snapshot_id
from tasks.backtest import backtest_metrics, backtest_policy
from tasks.estimate import build_scenario_set, estimate_failure_model, health_file, scenario_provenance
from tasks.ingest import ingest_telemetry, record_ingest
from tasks.publish import move_latest, public_key_json, publish_policy_bundle
from tasks.pull import pull_sources
from tasks.solve import solve_shedding_policy
from tasks.support.locks import RUN_LIMIT, hold_limit
from tasks.support.timeouts import with_timeout
from tasks.track import (
    TrackingTarget,
    champion_metric,
    finish_run,
    library_versions,
    log_run_results,
    register_candidate,
    start_run,
)
from tasks.validate import validate_telemetry
from tasks.validation.incremental import remember_clean_parts, validate_new_telemetry

__all__ = ["RunSummary", "nightly", "run_nightly"]

POLICY = "shedding"
EXPECTED_VALUE = "shedding.expected_value_per_h"


@dataclass
class RunSummary:
    """What a run did, for the terminal, the Prefect artifact and tests."""

    rows_validated: int
    tables: dict[str, int]
    dependencies: int
    dependencies_with_outages: int
    scenarios: int
    covered_mass: float
    target_mass: float
    objective_by_solver: dict[str, float]
    chosen: dict[str, int]
    worst_gap: float | None
    expected_value_per_h: float
    published: bool
    bundle_path: str | None
    bundle_version: str | None
    mlflow_run_id: str
    model_version: str
    promoted: bool
    gates: dict = field(default_factory=dict)
    snapshot: str = ""
    raw_transitions: int = 0
    transitions_removed: int = 0
    kind: str = "nightly"  # or "resolve" (flows/resolve.py)
    scenarios_solved: int = 0  # the rest were reused from the per-scenario cache
    tracking_uri: str = ""
    families: dict = field(default_factory=dict)  # standby/routing: flows.families.FamilyOutcome

    def as_dict(self) -> dict:
        return asdict(self)

    def to_markdown(self) -> str:
        solvers = "\n".join(
            f"| {k} | {v:,.2f} | {self.chosen.get(k, 0)} |" for k, v in self.objective_by_solver.items()
        )
        gates = "\n".join(
            f"- {'✅' if c['passed'] else '❌'} **{c['name']}**: {c['detail']}" for c in self.gates.get("checks", [])
        )
        return (
            f"# qresilience {self.kind}\n\n"
            f"- rows validated: {self.rows_validated:,}\n- dependencies: {self.dependencies} "
            f"({self.dependencies_with_outages} with outages)\n"
            f"- scenarios: {self.scenarios}, covering {self.covered_mass:.4%} (target {self.target_mass:.2%})\n"
            f"- expected value: {self.expected_value_per_h:,.2f}/h, worst gap "
            f"{'n/a' if self.worst_gap is None else f'{self.worst_gap:.4%}'}\n"
            f"- bundle: {_bundle_link(self.bundle_version, self.bundle_path)}\n"
            f"- scenarios solved: {self.scenarios_solved}, reused from the cache: {self.scenarios - self.scenarios_solved}\n"
            + "".join(f"- {name}: {family_line(o)}\n" for name, o in self.families.items())
            + f"- MLflow run: {_mlflow_link(self.tracking_uri, self.mlflow_run_id)} (model version {self.model_version}, "
            f"{'champion' if self.promoted else 'candidate'})\n\n"
            f"| solver | objective (sum over scenarios) | chosen |\n|---|---|---|\n{solvers}\n\n## Gates\n{gates}\n"
        )


def _bundle_link(version: str | None, path: str | None) -> str:
    return f"[{version}]({Path(path).resolve().as_uri()}) `{path}`" if version and path else "not published"


def _mlflow_link(tracking_uri: str, run_id: str) -> str:
    """A clickable link when the tracking server speaks HTTP; the run id (and how to open it) otherwise."""
    if tracking_uri.startswith(("http://", "https://")):
        return f"[{run_id}]({tracking_uri.rstrip('/')}/#/experiments/0/runs/{run_id})"  # MLflow resolves the experiment
    return f"`{run_id}` (`mlflow ui --backend-store-uri {tracking_uri}`)" if tracking_uri else run_id


def _config_hash(settings: Settings) -> str:
    params = {k: v for k, v in settings.as_params().items() if not k.endswith("_dir")}
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()


def run_nightly(
    settings: Settings, *, kind: str = "nightly", incremental: bool = False, scope: tuple[str, ...] = ()
) -> RunSummary:
    """The pipeline body; ``nightly`` is its Prefect flow wrapper, ``flows.resolve`` calls it with
    ``kind="resolve", incremental=True`` (validate only new files; see tasks/incremental.py).

    Every step runs with ``orchestration.step_timeout_s``; the family solves, which run
    on worker threads Prefect cannot interrupt, are bounded by their solvers' time limits.
    """
    log = get_run_logger()
    # Hand what is alive now (modules, classes, library caches: ~0.5-0.9M objects) to the
    # permanent generation: the cyclic collector stops rescanning it, and a full collection of
    # that heap took 0.5-0.7 s, one or two per run (measured). Reference counting still frees
    # these objects; only cycles among them would stay.
    gc.freeze()
    step = partial(with_timeout, seconds=settings.orchestration.step_timeout_s)
    if settings.sources and kind == "nightly":
        step(pull_sources)(settings.sources, settings.data_dir)  # [sources] Prometheus entries land first
    telemetry = step(ingest_telemetry)(
        settings.data_dir,
        lateness_min=settings.ingest.lateness_min,
        state_dir=settings.state_dir if settings.ingest.incremental else None,
    )
    checks = {
        "quarantine_max_share": settings.ingest.quarantine_max_share,
        "quarantine_max_share_by_table": settings.ingest.quarantine_max_share_by_table,
        "freshness_max_age_h": settings.ingest.freshness_max_age_h,
    }
    if incremental:
        report, data_docs, tables, pieces = validate_new_telemetry(
            telemetry, state_dir=settings.state_dir, timeout_s=settings.orchestration.step_timeout_s, **checks
        )
        health_files = pieces.get("health_checks")
    else:
        report, data_docs = step(validate_telemetry)(telemetry, state_dir=settings.state_dir, **checks)
        tables = conform_tables(report.clean)
        remember_clean_parts(settings.state_dir, telemetry, report)
        # Per-file window grids only when the clean table is those files whole (nothing quarantined).
        held = report.quarantine.get("health_checks")
        health_files = (
            None
            if held is not None and held.num_rows
            else [(p.sha256, p.table) for p in telemetry.parts.get("health_checks", [])]
        )
    step(record_ingest)(telemetry)  # validated: keep the snapshot, move the watermarks
    pool, pool_computed = submit_latency_pool(settings, tables, reuse=incremental)  # routing's, beside the fit
    model = step(estimate_failure_model)(
        tables,
        window_min=settings.model.window_min,
        hysteresis_windows=settings.model.hysteresis_windows,
        hysteresis_min=settings.model.hysteresis_min,
        agreement=settings.model.agreement,
        credible=settings.model.credible,
        alpha=settings.model.alpha,
        health_files=health_files,
        grid_cache=settings.state_dir / "cache" / "windows",
    )
    sc = settings.scenarios
    scenarios = step(build_scenario_set)(
        model,
        tables,
        target_mass=sc.target_mass,
        seed=settings.seed,
        sample_max=sc.sample_max,
        sample_min_probability=sc.sample_min_probability,
        what_if=sc.what_if,
        sample_params={"num_reads": sc.sample_num_reads, "num_sweeps": sc.sample_num_sweeps, "beta": sc.sample_beta},
    )
    pending = submit_families(settings, tables, scenarios, pool)  # tiers, standby, routing: overlap the rest
    solved = solve_shedding_policy(
        tables,
        scenarios,
        seed=settings.seed,
        time_limit_s=settings.solve.time_limit_s,
        solvers=settings.solve.solvers,
        levels=settings.solve.levels,
        top_k=settings.solve.top_k,
        anneal_params={
            "sampler": settings.solve.sampler,
            "num_reads": settings.solve.anneal_num_reads,
            "num_sweeps": settings.solve.anneal_num_sweeps,
        },
        cache_dir=settings.state_dir / "cache" / POLICY if settings.orchestration.solve_cache else None,
        chunk_size=settings.orchestration.solve_chunk,
        timeout_s=settings.orchestration.task_timeout_s,
        scope=scope,
    )
    backtest = None
    if settings.backtest.enabled:  # fit on the past, replay later incidents: figures for MLflow and the gates
        backtest = step(backtest_policy)(tables, backtest_config(settings))

    target = TrackingTarget(settings.tracking_uri, settings.mlflow.experiment, settings.artifact_root)
    model_name = f"{settings.mlflow.registered_model_prefix}-{POLICY}"
    snap = snapshot_id(telemetry.sha256)
    run_id = step(start_run)(
        target,
        run_name=f"{kind}-{flow_run.get_name() or 'local'}",
        params={**settings.as_params(), "config_hash": _config_hash(settings), "snapshot": snap},
        inputs={name: (telemetry.uri(name), sha) for name, sha in telemetry.sha256.items()},
        tags={"qres.flow": kind, "qres.policy": POLICY, "prefect.flow_run_id": str(flow_run.get_id() or "")},
    )
    try:
        per_dep = model.per_dependency
        metrics = {
            **solved.metrics,
            "rows_validated": float(report.rows_validated),
            "scenarios.covered_mass": scenarios.covered_mass,
            "scenarios.count": float(len(scenarios.scenarios)),
            "model.dependencies_with_outages": float((per_dep["outages"] > 0).sum()),
            "model.raw_transitions": float(model.info["raw_transitions"]),
            "model.transitions_removed": float(model.info["transitions_removed"]),
            "model.significant_pairs": float(model.co_failure["significant"].sum()),
            "scenarios.sampled": float(scenarios.info["n_sampled_added"]),
            **(backtest_metrics(backtest) if backtest else {}),
        }
        docs = (
            {}
            if data_docs is None
            else {  # Data Docs and quarantined rows, kept with the run
                p.relative_to(data_docs.parent).as_posix(): p.read_bytes()
                for p in sorted(data_docs.parent.rglob("*"))
                if p.is_file()
            }
        )
        step(log_run_results)(
            target,
            run_id,
            metrics=metrics,
            files=docs,
            artifact_dir="data_docs",
            json_artifacts={
                "validation.json": {**report.as_dict(), "data_docs": str(data_docs) if data_docs else None},
                "failure_model.json": json.loads(per_dep.to_json(orient="records")),
                "co_failure.json": json.loads(model.co_failure.to_json(orient="records")),
                "solvers.json": solved.solvers,
            },
        )
        run_manifest = {
            "data_dir": str(settings.data_dir),
            "inputs_uri": {name: telemetry.uri(name) for name in telemetry.sha256},
            "inputs": {"snapshot": snap, "sha256": telemetry.sha256, "rows": telemetry.rows},
            "config_hash": _config_hash(settings),
            "seed": settings.seed,
            "versions": library_versions(),
            "scenarios": scenario_provenance(scenarios),
        }
        # Families solved while the tiers still solve are published meanwhile; the rest after shedding.
        family_outcomes = publish_families(
            settings,
            target,
            run_id,
            pending.take_while_tiers_solve(),
            run_manifest=run_manifest,
            validation_passed=report.success,
        )
        tier_files, tier_metrics = pending.tiers()  # the shedding bundle carries them
        bundle_files = {
            **solved.files,
            **tier_files,
            **health_file(model, horizon_min=settings.model.health_horizon_min),
        }
        if backtest is not None:
            from tasks.report import render_report

            family_tables = {sp.policy: sp.files["decisions.parquet"] for sp in pending.result().solved}
            if "tiers.parquet" in tier_files:
                family_tables["tiers"] = tier_files["tiers.parquet"]
            page = render_report(
                backtest,
                title="qresilience nightly report",
                model=model,
                scenarios=scenarios,
                decisions=solved.files["decisions.parquet"],
                solvers=solved.solvers,
                families=family_tables,
            )
            step(log_run_results)(
                target,
                run_id,
                metrics={},
                files={"report.html": page.encode()},
                json_artifacts={"backtest.json": {k: v for k, v in backtest.items() if k != "train"}},
                artifact_dir="report",
            )
        _, champion_value = champion_metric(target, model_name, EXPECTED_VALUE)
        _, champion_backtest = champion_metric(target, model_name, "backtest.share.published")
        bt_share = (backtest or {}).get("overall", {}).get("published", {}).get("share")
        gates = evaluate_gates(
            validation_passed=report.success,
            infeasible=solved.infeasible,
            worst_gap=solved.worst_gap,
            expected_value=solved.expected_value,
            champion_expected_value=champion_value,
            max_gap=settings.gates.max_gap,
            tolerance=settings.gates.tolerance,
            backtest_share=bt_share,
            champion_backtest_share=champion_backtest,
            backtest_min_share=settings.backtest.min_share,
            backtest_tolerance=settings.backtest.tolerance,
        )
        # Every solved version is stored (signed) so it can be registered, served and promoted
        # later; LATEST moves only when the gates pass, and only after registration.
        stored = step(publish_policy_bundle)(
            settings.store_dir,
            POLICY,
            bundle_files,
            {
                **run_manifest,
                "mlflow_run_id": run_id,
                "mlflow_model": {"name": model_name},
                "solvers": solved.solvers,
                "gates": gates.as_dict(),
                "metrics": dict(metrics.items()),
            },
            key_dir=settings.bundle.key_dir,
            set_latest=False,
        )
        model_version = step(register_candidate)(  # with the bundle's files and the tier metrics, one MLflow step
            target,
            run_id,
            model_name,
            bundle_path=stored.path,
            results={"metrics": tier_metrics, "files": bundle_files, "json_artifacts": {}},
            public_key=public_key_json(settings.bundle.key_dir) if stored.manifest["signatures"] else None,
        )
        published = None
        if gates.passed:
            published = step(move_latest)(
                settings.store_dir, POLICY, stored.version, keep=settings.bundle.keep_versions
            )
        else:
            log.warning(
                "gates held the new version back (%s); %s stays stored as a candidate, LATEST as it was",
                "; ".join(f"{c.name}: {c.detail}" for c in gates.failed),
                stored.version,
            )
        family_outcomes += publish_families(
            settings, target, run_id, pending.take_rest(), run_manifest=run_manifest, validation_passed=report.success
        )
        family_outcomes.sort(key=lambda o: FAMILY_ORDER.index(o.policy))
        if pool_computed:
            remember_latency_pool(settings, pool, snapshot=snap)
        step(finish_run)(
            target,
            run_id,
            model_name=model_name,
            model_version=model_version,
            promote=gates.passed,
            tags={
                "qres.published_version": published.version if published else "",
                "qres.bundle_version": stored.version,
                "qres.signed": str(bool(stored.manifest["signatures"])),
                "qres.gates": "passed" if gates.passed else "held",
            },
            json_artifacts={
                "gates.json": gates.as_dict(),
                **({"manifest.json": published.manifest} if published else {}),
            },
        )
    except BaseException:
        finish_run(
            target,
            run_id,
            model_name=None,
            model_version=None,
            promote=False,
            tags={"qres.gates": "error"},
            json_artifacts={},
            failed=True,
        )
        raise

    objective_by_solver = {s: solved.metrics.get(f"shedding.objective_sum.{s}", 0.0) for s in settings.solve.solvers}
    summary = RunSummary(
        rows_validated=report.rows_validated,
        tables=telemetry.rows,
        dependencies=len(per_dep),
        dependencies_with_outages=int((per_dep["outages"] > 0).sum()),
        scenarios=len(scenarios.scenarios),
        covered_mass=scenarios.covered_mass,
        target_mass=scenarios.target_mass,
        objective_by_solver=objective_by_solver,
        chosen={k.rsplit(".", 1)[1]: int(v) for k, v in solved.metrics.items() if k.startswith("shedding.wins.")},
        worst_gap=solved.worst_gap,
        expected_value_per_h=solved.expected_value,
        published=published is not None,
        bundle_path=str(published.path) if published else None,
        bundle_version=published.version if published else None,
        mlflow_run_id=run_id,
        model_version=model_version,
        promoted=gates.passed,
        gates=gates.as_dict(),
        snapshot=snap,
        raw_transitions=model.info["raw_transitions"],
        transitions_removed=model.info["transitions_removed"],
        kind=kind,
        scenarios_solved=int(solved.metrics.get("shedding.solved", len(scenarios.scenarios))),
        tracking_uri=settings.tracking_uri,
        families={o.policy: o.as_dict() for o in family_outcomes},
    )
    create_markdown_artifact(summary.to_markdown(), key=f"qres-{kind}-summary", description=f"qresilience {kind} run")
    return summary


@flow(name="qres-nightly", log_prints=False, validate_parameters=True)
def nightly(
    data: str | None = None, store: str | None = None, seed: int | None = None, config: str | None = None
) -> dict:
    """Run the whole pipeline once; settings from qres.toml / QRES_* with these overrides."""
    settings = load_settings(config, data_dir=data, store_dir=store, seed=seed)
    configure_environment(settings.state_dir)
    with hold_limit(RUN_LIMIT, timeout_s=settings.orchestration.run_lock_wait_s):  # never beside a re-solve
        return run_nightly(settings).as_dict()
