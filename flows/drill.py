"""``qres drill`` wiring: settings and options in, a drill run, recorded, out.

The processes and the figures live in ``tasks.drill`` and ``policies.drill``; this module only
picks the fault source, builds the configuration and records the result.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from flows.settings import Settings
from policies.drill.admission import POLICIES
from policies.drill.system import DEFAULT_SYSTEM, parse_roles
from policies.drill.timeline import plan_faults
from policies.errors import QresError
from tasks.drill import sources
from tasks.drill.procs import DrillProcessError
from tasks.drill.record import log_to_mlflow, save_record
from tasks.drill.run import DrillConfig, run_drill

__all__ = ["run_cli_drill", "split_list"]


def split_list(text: str, what: str, allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
    items = tuple(x.strip() for x in text.split(",") if x.strip())
    bad = [x for x in items if allowed is not None and x not in allowed]
    if not items or bad:
        among = f" of {', '.join(allowed)}" if allowed else ""
        raise QresError(f"{what} takes a comma-separated list{among}; got {text!r}")
    return items


def _source(settings: Settings, bundle, system, scenario, incident, down, degraded, for_) -> sources.FaultSource:
    chosen = [x for x in (scenario, incident, down or degraded) if x]
    if len(chosen) != 1:
        raise QresError("give exactly one of --scenario KEY, --incident ID or --down/--degraded (a what-if)")
    if scenario:
        return sources.scenario_source(bundle, scenario, system)
    if incident:
        return sources.incident_source(settings.data_dir, incident)
    return sources.what_if_source(down or "", degraded or "", for_)


def run_cli_drill(settings: Settings, opts: dict, public_key: Path | None, progress=None) -> dict:
    """Run the drill ``opts`` describe (the CLI's options by name) and record it; the result."""
    system = parse_roles(opts.get("roles") or "", DEFAULT_SYSTEM)
    bundle = sources.published_bundle(Path(settings.store_dir))
    src = _source(
        settings,
        bundle,
        system,
        opts.get("scenario"),
        opts.get("incident"),
        opts.get("down"),
        opts.get("degraded"),
        opts.get("for_"),
    )
    policies = split_list(opts.get("policies") or ",".join(POLICIES), "--policies", POLICIES)
    try:
        seeds = tuple(int(s) for s in split_list(opts.get("seeds") or "1", "--seeds"))
    except ValueError:
        raise QresError(f"--seeds takes comma-separated integers; got {opts.get('seeds')!r}") from None
    cfg = DrillConfig(
        store=Path(settings.store_dir).absolute(),
        public_key=public_key,
        allow_unsigned=settings.bundle.allow_unsigned,
        system=system,
        policies=policies,
        seeds=seeds,
        window_s=float(opts.get("duration") or 16.0),
        rate_per_s=float(opts.get("rate") or 8.0),
        service_cmd=opts.get("service_cmd"),
    )

    def faults(seed: int):
        kw = {"source": src.label, "fixed_s": src.fixed_s, "duration_min": src.duration_min}
        return plan_faults(src.down, src.degraded, system, bundle.health, seed, cfg.window_s, **kw)

    try:
        faults(seeds[0])  # a source that touches none of the stand-ins fails here, before any process starts
    except ValueError as exc:
        raise QresError(str(exc)) from None
    work = Path(opts.get("work") or Path(settings.state_dir) / "drills" / "work")
    for old in work.glob("seed-*"):  # only what an earlier drill wrote there; never the folder itself
        shutil.rmtree(old, ignore_errors=True)
    try:
        result = run_drill(cfg, faults, work, progress=progress)
    except DrillProcessError as exc:
        raise QresError(f"drill failed: {exc}") from exc
    result["bundle_version"] = bundle.version
    if opts.get("record", True):
        result["record"] = str(save_record(result, Path(settings.state_dir)))
        result["mlflow_run_id"] = log_to_mlflow(
            result, settings.tracking_uri, settings.mlflow.experiment, Path(settings.artifact_root)
        )
    return result
