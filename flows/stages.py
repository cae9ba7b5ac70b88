"""The nightly's stages before publishing, each one call from ``flows.nightly.run_nightly``.

Each stage turns settings into the keyword arguments of its tasks and hands back what the next
stage needs; no decision is made here (they live in ``policies/``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pyarrow as pa
from prefect.logging import get_run_logger

from flows.params import model_params
from flows.settings import Settings
from policies.model.failure_model import FailureModel
from policies.scenarios.scenario_set import ScenarioSet
from policies.telemetry.history_checks import history_warnings
from policies.telemetry.ingest import Telemetry, conform_tables, snapshot_id
from policies.telemetry.mapped import release_pages
from tasks.estimate import build_scenario_set, estimate_failure_model, scenario_provenance
from tasks.ingest import ingest_telemetry, record_ingest
from tasks.pull import pull_sources
from tasks.support.timeouts import with_timeout
from tasks.track import library_versions
from tasks.validate import validate_telemetry
from tasks.validation.incremental import remember_clean_parts, validate_new_telemetry
from tasks.validation.suite import ValidationReport

__all__ = [
    "Validated",
    "ingest_and_validate",
    "history_warnings_of",
    "fit_model",
    "build_scenarios",
    "run_manifest",
    "config_hash",
]


@dataclass(frozen=True)
class Validated:
    """Telemetry that passed validation: the clean tables and where they came from."""

    telemetry: Telemetry
    report: ValidationReport
    data_docs: Path | None
    tables: dict
    health_files: list | None  # (sha256, table) per health-check file, for the window-grid cache

    @property
    def snapshot(self) -> str:
        return snapshot_id(self.telemetry.sha256)


def _step(settings: Settings):
    return partial(with_timeout, seconds=settings.orchestration.step_timeout_s)


def ingest_and_validate(settings: Settings, *, incremental: bool) -> Validated:
    """Read past the watermark, validate (only new files when ``incremental``), then commit the ingest."""
    step = _step(settings)
    if (
        settings.sources and not incremental
    ):  # the nightly lands its [sources] pulls first; a re-solve reads what landed
        step(pull_sources)(settings.sources, settings.data_dir)
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
    if not incremental:  # the whole history is at hand: say what looks retired, silent or too quiet to learn from
        for warning in history_warnings_of(tables.get("health_checks"), settings):
            get_run_logger().warning("history: %s", warning["message"])
    release_pages()  # each stage reads the mapped day files afresh (policies/telemetry/mapped.py)
    return Validated(telemetry, report, data_docs, tables, health_files)


def history_warnings_of(checks, settings: Settings) -> list[dict]:
    """Warning-level rules on the health checks (policies/telemetry/history_checks.py); they never fail a run."""
    if checks is None or not {"ts", "service_id", "status"} <= set(checks.column_names):
        return []
    ing = settings.ingest
    try:
        return history_warnings(
            checks, max_down_h=ing.warn_down_h, max_silent_h=ing.warn_silent_h, min_outages=ing.warn_min_outages
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return []  # malformed columns: validation has already named them


def fit_model(settings: Settings, data: Validated) -> FailureModel:
    model = _step(settings)(estimate_failure_model)(
        data.tables,
        **model_params(settings),
        health_files=data.health_files,
        grid_cache=settings.state_dir / "cache" / "windows",
    )
    release_pages()
    return model


def build_scenarios(settings: Settings, model: FailureModel, tables: dict) -> ScenarioSet:
    sc = settings.scenarios
    return _step(settings)(build_scenario_set)(
        model,
        tables,
        target_mass=sc.target_mass,
        seed=settings.seed,
        sample_max=sc.sample_max,
        sample_min_probability=sc.sample_min_probability,
        what_if=sc.what_if,
        single_outages=sc.single_outages,
        sample_params={"num_reads": sc.sample_num_reads, "num_sweeps": sc.sample_num_sweeps, "beta": sc.sample_beta},
    )


def config_hash(settings: Settings) -> str:
    params = {k: v for k, v in settings.as_params().items() if not k.endswith("_dir")}
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()


def run_manifest(settings: Settings, data: Validated, scenarios: ScenarioSet) -> dict:
    """The manifest fields that describe the run, the same in every family's bundle."""
    telemetry = data.telemetry
    return {
        "data_dir": str(settings.data_dir),
        "inputs_uri": {name: telemetry.uri(name) for name in telemetry.sha256},
        "inputs": {"snapshot": data.snapshot, "sha256": telemetry.sha256, "rows": telemetry.rows},
        "config_hash": config_hash(settings),
        "seed": settings.seed,
        "versions": library_versions(),
        "scenarios": scenario_provenance(scenarios),
    }
