"""What a run records beside its bundles: the MLflow run's identity, figures and files, the report.

Split from ``flows.nightly`` so the nightly module is the wiring; nothing here decides anything.
"""

from __future__ import annotations

import json

from prefect.runtime import flow_run

from flows.publish import FamilyOutcome
from flows.settings import Settings
from flows.stages import Validated, config_hash
from policies.model.failure_model import FailureModel
from policies.scenarios.scenario_set import ScenarioSet
from qres_client.bundle import DECISIONS_FILE, TIERS_TABLE_FILE
from tasks.backtest import backtest_metrics
from tasks.solve import SolvedPolicy
from tasks.track import log_run_results

__all__ = ["run_identity", "run_metrics", "run_artifacts", "record_report", "final_tags", "final_reports"]


def run_identity(settings: Settings, data: Validated, kind: str) -> dict:
    """``start_run``'s name, parameters, inputs and tags for this run."""
    return {
        "run_name": f"{kind}-{flow_run.get_name() or 'local'}",
        "params": {**settings.as_params(), "config_hash": config_hash(settings), "snapshot": data.snapshot},
        "inputs": {name: (data.telemetry.uri(name), sha) for name, sha in data.telemetry.sha256.items()},
        "tags": {"qres.flow": kind, "qres.policy": "shedding", "prefect.flow_run_id": str(flow_run.get_id() or "")},
    }


def run_metrics(data: Validated, model: FailureModel, scenarios: ScenarioSet, backtest: dict | None) -> dict:
    """The run's own figures (each family's are logged with its bundle)."""
    per_dep = model.per_dependency
    return {
        "rows_validated": float(data.report.rows_validated),
        "scenarios.covered_mass": scenarios.covered_mass,
        "scenarios.count": float(len(scenarios.scenarios)),
        "model.dependencies_with_outages": float((per_dep["outages"] > 0).sum()),
        "model.raw_transitions": float(model.info["raw_transitions"]),
        "model.transitions_removed": float(model.info["transitions_removed"]),
        "model.significant_pairs": float(model.co_failure["significant"].sum()),
        "scenarios.sampled": float(scenarios.info["n_sampled_added"]),
        **(backtest_metrics(backtest) if backtest else {}),
    }


def run_artifacts(data: Validated, model: FailureModel, metrics: dict, solved: SolvedPolicy) -> dict:
    """Arguments of ``log_run_results``: run metrics, Data Docs and quarantined rows, JSON reports."""
    docs = data.data_docs
    files = (
        {}
        if docs is None
        else {
            p.relative_to(docs.parent).as_posix(): p.read_bytes() for p in sorted(docs.parent.rglob("*")) if p.is_file()
        }
    )
    return {
        "metrics": {k: v for k, v in metrics.items() if k not in solved.metrics},  # shedding's go with its bundle
        "files": files,
        "artifact_dir": "data_docs",
        "json_artifacts": {
            "validation.json": {**data.report.as_dict(), "data_docs": str(docs) if docs else None},
            "failure_model.json": json.loads(model.per_dependency.to_json(orient="records")),
            "co_failure.json": json.loads(model.co_failure.to_json(orient="records")),
            "solvers.json": solved.solvers,
        },
    }


def _log_report(step, target, run_id, backtest, model, scenarios, shedding: SolvedPolicy, pending, drills=None) -> str:
    """The HTML report (with every family's decisions) and the backtest, kept with the run."""
    from tasks.report import render_report  # matplotlib: only when a report is drawn

    families = {sp.policy: sp.files[DECISIONS_FILE] for sp in pending.result().solved}
    if TIERS_TABLE_FILE in shedding.files:
        families["tiers"] = shedding.files[TIERS_TABLE_FILE]
    page = render_report(
        backtest,
        title="qresilience nightly report",
        model=model,
        scenarios=scenarios,
        decisions=shedding.files[DECISIONS_FILE],
        solvers=shedding.solvers,
        families=families,
        drills=drills,
    )
    step(log_run_results)(
        target,
        run_id,
        metrics={},
        files={"report.html": page.encode()},
        json_artifacts={"backtest.json": {k: v for k, v in backtest.items() if k != "train"}},
        artifact_dir="report",
    )
    return page


def record_report(settings, step, target, run_id, kind, backtest, model, scenarios, shedding, pending) -> str | None:
    """The HTML report with the run in MLflow and in ``<state_dir>/reports``; None without a backtest."""
    if backtest is None:
        return None
    from tasks.drill.record import latest_records

    drills = latest_records(settings.state_dir)
    page = _log_report(step, target, run_id, backtest, model, scenarios, shedding, pending, drills)
    return _write_report_file(settings, f"{kind}-{run_id}", page)


def _write_report_file(settings: Settings, name: str, page: str) -> str:
    """The report beside the run's state too (``<state_dir>/reports``), where a person finds it."""
    folder = settings.state_dir / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.html"
    tmp = folder / f".tmp-{name}.html"
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)  # atomic: a reader never sees half a page
    return str(path)


def final_tags(shed: FamilyOutcome) -> dict[str, str]:
    return {
        "qres.published_version": shed.stored_version if shed.published else "",
        "qres.bundle_version": shed.stored_version,
        "qres.signed": str(shed.signed),
        "qres.gates": "unchanged" if shed.unchanged else "passed" if shed.promoted else "held",
    }


def final_reports(settings: Settings, shed: FamilyOutcome) -> dict:
    out: dict = {"gates.json": shed.gates}
    if shed.published:
        from qres_client.bundle import verify_bundle

        out["manifest.json"] = verify_bundle(shed.bundle_path)
    return out
