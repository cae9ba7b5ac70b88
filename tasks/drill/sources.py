"""Where a drill's faults come from: a published scenario, an incident from history, or a what-if.

Each answer is a ``FaultSource``: what goes down or degraded, and how long (left to the failure
model when not given). Scenarios are read from the verified published bundle, incidents from the
telemetry's ``incidents`` table, so a drill plays exactly what the policy was solved for.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from policies.drill.system import DrillSystem
from policies.errors import QresError
from qres_client.bundle import DECISIONS_FILE, HEALTH_FILE, read_latest, verify_bundle

__all__ = [
    "FaultSource",
    "PublishedBundle",
    "published_bundle",
    "scenario_source",
    "incident_source",
    "what_if_source",
    "parse_duration",
]


@dataclass(frozen=True)
class FaultSource:
    label: str  # scenario:<key>, incident:<id> or what-if
    down: tuple[str, ...]
    degraded: tuple[str, ...] = ()
    fixed_s: float | None = None  # sustained outage length in drill seconds (a what-if's --for)
    duration_min: float | None = None  # a real outage's length (an incident)


@dataclass(frozen=True)
class PublishedBundle:
    store: Path
    version: str
    path: Path
    manifest: dict
    health: dict

    def scenarios(self) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
        """Scenario key -> (down, degraded), from the bundle's decisions."""
        table = pq.read_table(self.path / DECISIONS_FILE, columns=["scenario_key", "down", "degraded"])
        out = {}
        for row in table.to_pylist():
            out.setdefault(row["scenario_key"], (tuple(row["down"]), tuple(row["degraded"])))
        return out

    def plans(self) -> list[dict]:
        """Every scenario with its probability and ranked actions (the runbook's input)."""
        rows = pq.read_table(self.path / DECISIONS_FILE).to_pylist()
        out: dict[str, dict] = {}
        for r in rows:
            s = out.setdefault(
                r["scenario_key"],
                {
                    "key": r["scenario_key"],
                    "down": r["down"],
                    "degraded": r["degraded"],
                    "probability": r["probability"],
                    "actions": [],
                },
            )
            s["actions"].append({"workload_id": r["workload_id"], "admit": r["admit"], "rank": r["rank"]})
        for s in out.values():
            s["actions"].sort(key=lambda a: a["rank"])
        return list(out.values())


def published_bundle(store: Path) -> PublishedBundle:
    """The LATEST shedding bundle, its sha256s checked; QresError naming the fix when there is none."""
    version = read_latest(store, "shedding")
    if version is None:
        raise QresError(
            f"no shedding bundle published in {store}: run `qres run` first (a drill plays a published policy)"
        )
    path = store / "shedding" / version
    manifest = verify_bundle(path)
    return PublishedBundle(store, version, path, manifest, json.loads((path / HEALTH_FILE).read_bytes()))


def drillable(bundle: PublishedBundle, system: DrillSystem) -> list[str]:
    """Scenario keys that take down or degrade at least one dependency the drill has a stand-in for."""
    return sorted(k for k, (d, g) in bundle.scenarios().items() if any(system.role_of(s) for s in (*d, *g)))


def scenario_source(bundle: PublishedBundle, key: str, system: DrillSystem) -> FaultSource:
    scenarios = bundle.scenarios()
    if key not in scenarios:
        raise QresError(
            f"no scenario {key!r} in shedding {bundle.version}; scenarios the drill can play: "
            + ", ".join(drillable(bundle, system))
        )
    down, degraded = scenarios[key]
    return FaultSource(f"scenario:{key}", down, degraded)


def incident_source(data_dir: Path | str, incident_id: str) -> FaultSource:
    path = Path(str(data_dir)) / "incidents.parquet"
    if not path.exists():
        path = Path(str(data_dir)) / "incidents"
    if not path.exists():
        raise QresError(f"no incidents table in {data_dir}: --incident reads <data>/incidents(.parquet)")
    rows = pq.read_table(path).to_pylist()
    row = next((r for r in rows if r["incident_id"] == incident_id), None)
    if row is None:
        known = ", ".join(sorted(r["incident_id"] for r in rows)[:30])
        raise QresError(f"no incident {incident_id!r} in {path}; known: {known}")
    minutes = None
    if row["resolved_at"] is not None:
        minutes = (row["resolved_at"] - row["started_at"]).total_seconds() / 60
    return FaultSource(f"incident:{incident_id}", tuple(row["affected"]), (), None, minutes)


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``2m`` or ``1.5m`` -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m)?\s*", text or "")
    if not m or float(m.group(1)) <= 0:
        raise QresError(f"--for takes a duration such as 60s or 2m; got {text!r}")
    return float(m.group(1)) * (60 if m.group(2) == "m" else 1)


def what_if_source(down: str, degraded: str, duration: str | None) -> FaultSource:
    def split(s: str) -> tuple[str, ...]:
        return tuple(sorted({x.strip() for x in s.split(",") if x.strip()}))

    return FaultSource("what-if", split(down), split(degraded), parse_duration(duration) if duration else None)
