"""What a drill leaves behind: an MLflow run and a JSON record the runbook and the report read.

The MLflow run (tag ``qres.flow=drill``) has the drill's parameters (source, seeds, policies,
bundle version, the roles), a metric per policy and figure (the mean over seeds) and two
artifacts: ``drill/timeline.json`` (per seed: the fault plan, every observed-state and decision
change per policy) and ``drill/result.json`` (the figures). The same record goes to
``<state_dir>/drills/``, newest last by name.
"""

from __future__ import annotations

import json
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["drill_metrics", "timeline_of", "save_record", "log_to_mlflow", "latest_records"]


def drill_metrics(result: dict) -> dict[str, float]:
    """``<policy>.<figure>`` (mean over seeds) and ``<policy>.sla_miss.<priority>``."""
    out: dict[str, float] = {}
    for policy, summary in result["summary"].items():
        for name, fig in summary.items():
            if isinstance(fig, dict) and "mean" in fig:
                out[f"{policy}.{name}"] = float(fig["mean"])
        for prio, share in summary["sla_miss"].items():
            out[f"{policy}.sla_miss.{prio}"] = float(share)
    return out


def timeline_of(result: dict) -> list[dict]:
    return [{"seed": s["seed"], "plan": s["plan"], "events": s["events"]} for s in result["per_seed"]]


def save_record(result: dict, state_dir: Path) -> Path:
    folder = Path(state_dir) / "drills"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", result["source"])[:80]
    path = folder / f"drill-{stamp}-{slug}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, sort_keys=True, indent=1), encoding="utf-8")
    tmp.replace(path)
    return path


def latest_records(state_dir: Path) -> dict[str, dict]:
    """The newest drill record per fault source (``scenario:<key>``, ``incident:<id>``, ``what-if``)."""
    out: dict[str, dict] = {}
    for path in sorted((Path(state_dir) / "drills").glob("drill-*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and "source" in doc and "summary" in doc:
            out[doc["source"]] = {**doc, "record": str(path)}
    return out


def log_to_mlflow(result: dict, tracking_uri: str, experiment: str, artifact_root: Path) -> str:
    """One MLflow run for the drill; returns its id."""
    from mlflow.entities import Metric, Param, RunStatus

    from tasks.track import TrackingTarget

    target = TrackingTarget(tracking_uri, experiment, Path(artifact_root))
    client = target.client()
    run = client.create_run(
        target.experiment_id(client),
        run_name=f"drill-{result['source']}",
        tags={"qres.flow": "drill", "qres.policy": "shedding", "qres.bundle_version": result["bundle_version"]},
    )
    run_id = run.info.run_id
    params = {
        "source": result["source"],
        "bundle_version": result["bundle_version"],
        "seeds": json.dumps(result["seeds"]),
        "policies": json.dumps(result["policies"]),
        "window_s": str(result["per_seed"][0]["plan"]["window_s"]),
        "rate_per_s": str(result["rate_per_s"]),
        "roles": json.dumps(result["roles"], sort_keys=True),
    }
    metrics = [Metric(k, v, 0, 0) for k, v in sorted(drill_metrics(result).items())]
    client.log_batch(run_id, params=[Param(k, v[:6000]) for k, v in sorted(params.items())], metrics=metrics)
    with tempfile.TemporaryDirectory(prefix="qres-drill-") as tmp:
        Path(tmp, "timeline.json").write_text(json.dumps(timeline_of(result), indent=1, sort_keys=True))
        figures = {k: result[k] for k in ("source", "bundle_version", "seeds", "policies", "summary")}
        figures["per_seed"] = [{"seed": s["seed"], "outcomes": s["outcomes"]} for s in result["per_seed"]]
        Path(tmp, "result.json").write_text(json.dumps(figures, indent=1, sort_keys=True))
        client.log_artifacts(run_id, tmp, "drill")
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
    return run_id
