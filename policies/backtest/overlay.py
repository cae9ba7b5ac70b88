"""Lay a known system (services, dependencies, workloads) over a real outage timeline.

Status histories (Upptime, Statuspage) say *when* things failed but know nothing of
dependencies or workloads. To backtest on them, each real site is mapped onto one of the
overlay's failure targets and its health checks are renamed accordingly.

Named overlays (:data:`OVERLAY_NAMES`: the tables in ``overlays/*.json``, written from public
microservice benchmarks, see ``overlays/README.md``, and ``sample``, the synthetic sample's
topology) declare their targets: the compute zones, then their data stores. Real sites are
ordered by the sha256 of their id and site *i* goes to target ``i mod len(targets)``: fixed
by the ids alone, never by what failed, so no history is fitted to its overlay.

An overlay given as a telemetry folder has no declared targets; its rule is chosen so that the
real outages exercise the decisions that matter:

1. targets: the overlay's regions (sorted by id), then every other service some service
   depends on (sorted by id);
2. sites: sorted by down checks descending (the sites that failed most first), ties by id;
3. site i goes to target ``i mod len(targets)``; several sites on one target make it down
   when any of them is (the worst check in a window wins, as for probes).

So the real site that failed most takes the first region down, the next the second region,
and so on; targets without a site never fail.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from policies.errors import QresError
from policies.schema import TABLES

__all__ = ["OVERLAY_NAMES", "load_overlay", "map_sites", "overlay_timeline"]

OVERLAYS_DIR = Path(__file__).resolve().parent / "overlays"
OVERLAY_NAMES = ("dsb-hotel", "dsb-social", "sample", "trainticket")
_TOPOLOGY = ("services", "dependencies", "workloads")
_STANDBY = ("sites", "standby_candidates")  # optional: where standby copies can be kept warm


def load_overlay(name: str) -> tuple[dict[str, pa.Table], list[str]]:
    """The named overlay's services, dependencies, workloads (and standby sites and candidates), and its
    failure targets in order."""
    if name not in OVERLAY_NAMES:
        raise QresError(f"unknown overlay {name!r}; named overlays: {', '.join(OVERLAY_NAMES)} (or give a data folder)")
    if name == "sample":
        from policies.telemetry.sample import generate_sample

        sample = generate_sample(7, days=1)  # topology: seed only
        tables = {t: v for t, v in sample.items() if t in _TOPOLOGY + _STANDBY}
        return tables, _default_targets(tables)
    doc = json.loads((OVERLAYS_DIR / f"{name}.json").read_text(encoding="utf-8"))
    tables = {t: pa.Table.from_pylist(doc[t], schema=TABLES[t]) for t in _TOPOLOGY + _STANDBY if t in doc}
    return tables, list(doc["targets"])


def _default_targets(overlay: Mapping[str, pa.Table]) -> list[str]:
    services, deps = overlay["services"], overlay["dependencies"]
    regions = sorted(
        s
        for s, k in zip(services.column("service_id").to_pylist(), services.column("kind").to_pylist())
        if k == "region"
    )
    others = sorted(set(deps.column("depends_on").to_pylist()) - set(regions))
    return regions + others


def map_sites(
    checks: pa.Table, overlay: Mapping[str, pa.Table], targets: Sequence[str] | None = None
) -> dict[str, str]:
    """Real site id -> overlay target id (see the module docstring for both rules)."""
    sites = sorted(set(checks.column("service_id").to_pylist()))
    if targets is not None:
        if not targets:
            raise QresError("overlay declares no targets to map real sites onto")
        ranked = sorted(sites, key=lambda s: (hashlib.sha256(s.encode()).hexdigest(), s))
        return {site: targets[i % len(targets)] for i, site in enumerate(ranked)}
    targets = _default_targets(overlay)
    if not targets:
        raise QresError("overlay has no regions and no dependencies to map real sites onto")
    down = pc.equal(checks.column("status"), "down")
    counts = dict.fromkeys(sites, 0)
    if checks.num_rows:
        grouped = (
            pa.table({"s": checks.column("service_id"), "d": pc.cast(down, pa.int64())})
            .group_by("s")
            .aggregate([("d", "sum")])
        )
        counts.update(zip(grouped.column("s").to_pylist(), grouped.column("d_sum").to_pylist()))
    ranked = sorted(sites, key=lambda s: (-counts[s], s))
    return {site: targets[i % len(targets)] for i, site in enumerate(ranked)}


def overlay_timeline(
    real: Mapping[str, pa.Table], overlay: Mapping[str, pa.Table], targets: Sequence[str] | None = None
) -> tuple[dict[str, pa.Table], dict]:
    """The overlay's tables with ``real``'s health checks renamed onto its targets.

    Returns the tables (incidents dropped: they name real sites) and the mapping used.
    """
    checks = real["health_checks"]
    mapping = map_sites(checks, overlay, targets)
    ids = checks.column("service_id").to_pylist()
    renamed = checks.set_column(
        checks.schema.get_field_index("service_id"),
        "service_id",
        pa.array([mapping[s] for s in ids], checks.schema.field("service_id").type),
    )
    tables = {name: t for name, t in overlay.items() if name not in ("health_checks", "incidents")}
    tables["health_checks"] = renamed.sort_by([("ts", "ascending"), ("service_id", "ascending")])
    return tables, mapping
