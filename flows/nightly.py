"""The nightly pipeline: telemetry in, a verified shedding bundle out.

ingest -> validate -> failure model -> scenarios -> solve -> track -> gates -> publish.
The flow body only wires tasks; every decision lives in ``policies/``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger
from prefect.runtime import flow_run

from flows.environment import configure_environment
from flows.settings import Settings, load_settings
from policies.gates import evaluate_gates
from policies.ingest import conform_tables, snapshot_id
from tasks.estimate import build_scenario_set, estimate_failure_model, health_file, scenario_provenance
from tasks.ingest import ingest_telemetry
from tasks.publish import move_latest, public_key_json, publish_policy_bundle
from tasks.solve import solve_shedding_policy
from tasks.track import TrackingTarget, champion_metric, finish_run, library_versions, log_run_results, \
    register_candidate, start_run
from tasks.validate import validate_telemetry

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

    def as_dict(self) -> dict:
        return asdict(self)

    def to_markdown(self) -> str:
        solvers = "\n".join(f"| {k} | {v:,.2f} | {self.chosen.get(k, 0)} |" for k, v in self.objective_by_solver.items())
        gates = "\n".join(f"- {'✅' if c['passed'] else '❌'} **{c['name']}**: {c['detail']}" for c in self.gates.get("checks", []))
        return (
            f"# qresilience nightly\n\n"
            f"- rows validated: {self.rows_validated:,}\n- dependencies: {self.dependencies} "
            f"({self.dependencies_with_outages} with outages)\n"
            f"- scenarios: {self.scenarios}, covering {self.covered_mass:.4%} (target {self.target_mass:.2%})\n"
            f"- expected value: {self.expected_value_per_h:,.2f}/h, worst gap "
            f"{'n/a' if self.worst_gap is None else f'{self.worst_gap:.4%}'}\n"
            f"- bundle: {self.bundle_version or 'not published'} {self.bundle_path or ''}\n"
            f"- MLflow run: {self.mlflow_run_id} (model version {self.model_version}, "
            f"{'champion' if self.promoted else 'candidate'})\n\n"
            f"| solver | objective (sum over scenarios) | chosen |\n|---|---|---|\n{solvers}\n\n## Gates\n{gates}\n"
        )


def _config_hash(settings: Settings) -> str:
    params = {k: v for k, v in settings.as_params().items() if not k.endswith("_dir")}
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()


def run_nightly(settings: Settings) -> RunSummary:
    """The pipeline body; ``nightly`` is its Prefect flow wrapper."""
    log = get_run_logger()
    telemetry = ingest_telemetry(settings.data_dir)
    report, data_docs = validate_telemetry(
        telemetry, state_dir=settings.state_dir, quarantine_max_share=settings.ingest.quarantine_max_share,
        quarantine_max_share_by_table=settings.ingest.quarantine_max_share_by_table,
        freshness_max_age_h=settings.ingest.freshness_max_age_h)
    tables = conform_tables(report.clean)
    model = estimate_failure_model(tables, window_min=settings.model.window_min,
                                   hysteresis_windows=settings.model.hysteresis_windows,
                                   hysteresis_min=settings.model.hysteresis_min, agreement=settings.model.agreement,
                                   credible=settings.model.credible, alpha=settings.model.alpha)
    sc = settings.scenarios
    scenarios = build_scenario_set(
        model, tables, target_mass=sc.target_mass, seed=settings.seed, sample_max=sc.sample_max,
        sample_min_probability=sc.sample_min_probability, what_if=sc.what_if,
        sample_params={"num_reads": sc.sample_num_reads, "num_sweeps": sc.sample_num_sweeps, "beta": sc.sample_beta})
    solved = solve_shedding_policy(
        tables, scenarios, seed=settings.seed, time_limit_s=settings.solve.time_limit_s,
        solvers=settings.solve.solvers, levels=settings.solve.levels, top_k=settings.solve.top_k,
        anneal_params={"sampler": settings.solve.sampler, "num_reads": settings.solve.anneal_num_reads,
                       "num_sweeps": settings.solve.anneal_num_sweeps},
    )
    bundle_files = {**solved.files, **health_file(model, horizon_min=settings.model.health_horizon_min)}

    target = TrackingTarget(settings.tracking_uri, settings.mlflow.experiment, settings.artifact_root)
    model_name = f"{settings.mlflow.registered_model_prefix}-{POLICY}"
    snap = snapshot_id(telemetry.sha256)
    run_id = start_run(
        target, run_name=f"nightly-{flow_run.get_name() or 'local'}",
        params={**settings.as_params(), "config_hash": _config_hash(settings), "snapshot": snap},
        inputs={name: (telemetry.uri(name), sha) for name, sha in telemetry.sha256.items()},
        tags={"qres.flow": "nightly", "qres.policy": POLICY, "prefect.flow_run_id": str(flow_run.get_id() or "")},
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
        }
        log_run_results(target, run_id, metrics=metrics, files=bundle_files, json_artifacts={
            "validation.json": {**report.as_dict(), "data_docs": str(data_docs) if data_docs else None},
            "failure_model.json": json.loads(per_dep.to_json(orient="records")),
            "co_failure.json": json.loads(model.co_failure.to_json(orient="records")),
            "solvers.json": solved.solvers,
        })
        if data_docs is not None:  # Data Docs and quarantined rows, kept with the run
            docs = {p.name: p.read_bytes() for p in sorted(data_docs.parent.rglob("*")) if p.is_file()}
            log_run_results(target, run_id, metrics={}, files=docs, json_artifacts={}, artifact_dir="data_docs")
        _, champion_value = champion_metric(target, model_name, EXPECTED_VALUE)
        gates = evaluate_gates(
            validation_passed=report.success, infeasible=solved.infeasible, worst_gap=solved.worst_gap,
            expected_value=solved.expected_value, champion_expected_value=champion_value,
            max_gap=settings.gates.max_gap, tolerance=settings.gates.tolerance,
        )
        # Every solved version is stored (signed) so it can be registered, served and promoted
        # later; LATEST moves only when the gates pass, and only after registration.
        stored = publish_policy_bundle(settings.store_dir, POLICY, bundle_files, {
                "mlflow_run_id": run_id,
                "mlflow_model": {"name": model_name},
                "data_dir": str(settings.data_dir),
                "inputs_uri": {name: telemetry.uri(name) for name in telemetry.sha256},
                "inputs": {"snapshot": snap, "sha256": telemetry.sha256, "rows": telemetry.rows},
                "config_hash": _config_hash(settings),
                "seed": settings.seed,
                "versions": library_versions(),
                "solvers": solved.solvers,
                "gates": gates.as_dict(),
                "metrics": {k: v for k, v in metrics.items()},
                "scenarios": scenario_provenance(scenarios),
            }, key_dir=settings.bundle.key_dir, set_latest=False)
        model_version = register_candidate(target, run_id, model_name, bundle_path=stored.path,
                                           public_key=public_key_json(settings.bundle.key_dir)
                                           if stored.manifest["signatures"] else None)
        published = None
        if gates.passed:
            published = move_latest(settings.store_dir, POLICY, stored.version, keep=settings.bundle.keep_versions)
        else:
            log.warning("gates held the new version back (%s); %s stays stored as a candidate, LATEST as it was",
                        "; ".join(f"{c.name}: {c.detail}" for c in gates.failed), stored.version)
        finish_run(
            target, run_id, model_name=model_name, model_version=model_version, promote=gates.passed,
            tags={"qres.published_version": published.version if published else "",
                  "qres.bundle_version": stored.version, "qres.signed": str(bool(stored.manifest["signatures"])),
                  "qres.gates": "passed" if gates.passed else "held"},
            json_artifacts={"gates.json": gates.as_dict(), **({"manifest.json": published.manifest} if published else {})},
        )
    except BaseException:
        finish_run(target, run_id, model_name=None, model_version=None, promote=False,
                   tags={"qres.gates": "error"}, json_artifacts={}, failed=True)
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
    )
    create_markdown_artifact(summary.to_markdown(), key="qres-nightly-summary", description="qresilience nightly run")
    return summary


@flow(name="qres-nightly", log_prints=False, validate_parameters=True)
def nightly(data: str | None = None, store: str | None = None, seed: int | None = None,
            config: str | None = None) -> dict:
    """Run the whole pipeline once; settings from qres.toml / QRES_* with these overrides."""
    settings = load_settings(config, data_dir=data, store_dir=store, seed=seed)
    configure_environment(settings.state_dir)
    return run_nightly(settings).as_dict()
