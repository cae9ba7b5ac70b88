"""Re-solve after an incident: the nightly pipeline with the incident's telemetry, in seconds.

Same steps and the same gates as the nightly run (``flows.nightly.run_nightly``), with
three differences that make it fast: only telemetry files not validated before are
validated (tasks/incremental.py), scenarios whose shedding problem did not change come
from the per-scenario cache (tasks/solve_cache.py; the solve is deterministic, so the
answer is what a fresh solve would give), and the backtest is skipped unless
``orchestration.resolve_backtest`` is on (the nightly run carries that gate).
"""

from __future__ import annotations

import json

from prefect import flow
from prefect.artifacts import Artifact
from prefect.logging import get_run_logger

from flows.environment import configure_environment
from flows.handoff import RESULT_ARTIFACT
from flows.nightly import run_nightly
from flows.settings import load_settings
from policies.errors import NothingToLearnError, QresError
from policies.telemetry.incidents import select_incidents
from policies.telemetry.ingest import read_part
from policies.telemetry.sources import locate_source_files, open_source
from tasks.support.locks import RUN_LIMIT, hold_limit

__all__ = ["resolve", "incident_scope"]


def incident_scope(
    source: str, *, incident_id: str | None, since: str | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(incident ids, affected dependencies) from the source's incidents table (read alone, cheaply)."""
    src = open_source(source)
    files = locate_source_files(src).get("incidents", [])
    import pyarrow as pa

    table = pa.concat_tables([read_part(src, f).table for f in files]) if files else None
    if table is None:
        from policies.errors import ConfigError

        raise ConfigError(f"{source}: no incidents table; a re-solve needs the incident's record")
    scope = select_incidents(table, incident_id=incident_id, since=since, origin=files[0].uri)
    return scope.incident_ids, scope.dependencies


@flow(name="qres-resolve", log_prints=False, validate_parameters=True)
def resolve(
    incident: str | None = None,
    since: str | None = None,
    dependencies: list[str] | str | None = None,
    data: str | None = None,
    store: str | None = None,
    seed: int | None = None,
    config: str | None = None,
    force: bool = False,
) -> dict:
    """Re-fit with the newest telemetry and re-solve what the incident touched; publish through the gates.

    ``dependencies`` (a list, or a comma-separated string as an event trigger renders it)
    narrows the scope; empty means the incidents' affected services. A family whose decisions
    come out identical to its LATEST publishes nothing, unless ``force``. The outcome (the
    summary, or the error a command would print) is also a JSON artifact of the run, read back
    by a ``qres resolve`` that handed the re-solve to a served worker (flows/handoff.py).
    """
    try:
        result = _resolve(incident, since, dependencies, data, store, seed, config, force)
    except QresError as exc:
        _record({"error": str(exc), "refused": isinstance(exc, NothingToLearnError)})
        raise
    _record(result)
    return result


def _resolve(incident, since, dependencies, data, store, seed, config, force) -> dict:
    settings = load_settings(config, data_dir=data, store_dir=store, seed=seed)
    configure_environment(settings.state_dir, settings.bundle.key_dir)
    log = get_run_logger()
    ids, affected = incident_scope(settings.data_dir, incident_id=incident, since=since)
    if isinstance(dependencies, str):
        dependencies = [d.strip() for d in dependencies.split(",") if d.strip()]
    scope = tuple(sorted(set(dependencies or ()) or set(affected)))
    log.info("re-solving after %s; dependencies in scope: %s", ", ".join(ids), ", ".join(scope) or "none")
    if not settings.orchestration.resolve_backtest:
        settings = settings.model_copy(update={"backtest": settings.backtest.model_copy(update={"enabled": False})})
    with hold_limit(RUN_LIMIT, timeout_s=settings.orchestration.run_lock_wait_s):  # never beside a nightly
        summary = run_nightly(
            settings, kind="resolve", incremental=True, scope=scope, skip_unchanged=not force
        ).as_dict()
    return {**summary, "incidents": list(ids), "scope": list(scope)}


def _record(outcome: dict) -> None:
    """The outcome as the run's JSON artifact (JSON types only: paths become strings)."""
    Artifact(
        type="json",
        key=RESULT_ARTIFACT,
        description="qres resolve's outcome, read back by a command that handed the re-solve to this worker",
        data=json.loads(json.dumps(outcome, default=str)),
    ).create()
