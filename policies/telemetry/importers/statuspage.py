"""Import an Atlassian Statuspage incidents export: incidents, components and their status over time.

Input: the incidents API's JSON (``{"incidents": [...]}`` or a list) or JSON lines (one incident
per line), optionally gzipped, from a file or an fsspec URL. Each component (by its ``code``,
named after its latest name) becomes a service (kind ``saas``, tier 1). Each incident is one
episode per component it touched: the component follows that incident's updates'
``new_status`` until the incident's ``resolved_at``; overlapping incidents on one component
give the worst of their states (one resolving never clears another), and a never-resolved
incident is closed at its last update when that is over ``stale_open_h`` before the end
(:mod:`policies.telemetry.importers.episodes`). Before its first mention a component is
operational. Mapping: operational -> up; degraded_performance, partial_outage,
under_maintenance -> degraded; major_outage -> down. Health checks are resampled
(worst state per bin, ``--resolution-min``, default 60) from the first mention to the last
update. Incidents: severity critical=1, major=2, minor=3, none=4.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from policies.errors import DataValidationError, RuleViolation
from policies.schema import TABLES
from policies.telemetry.importers.common import RANK, resample_events, slugify, write_tables
from policies.telemetry.importers.episodes import Episode, component_events, parse_time
from policies.telemetry.importers.report import SUMMARY_FILE, ImportReport, SiteReport, Span

__all__ = ["read_statuspage_incidents", "import_statuspage", "STATUS_MAP"]

STATUS_MAP = {
    "operational": "up",
    "degraded_performance": "degraded",
    "partial_outage": "degraded",
    "under_maintenance": "degraded",
    "major_outage": "down",
}
_SEVERITY = {"critical": 1, "major": 2, "minor": 3, "none": 4, "maintenance": 4}


def read_statuspage_incidents(source: str | Path) -> list[dict]:
    """Every incident of the export (JSON, JSON lines, gzipped or not; a file or an fsspec URL)."""
    import fsspec

    try:
        with fsspec.open(str(source), "rb") as f:
            data = f.read()
    except (OSError, ValueError) as exc:
        raise DataValidationError(
            [RuleViolation("statuspage", None, "readable export", [str(exc)[:200]], file=str(source))]
        ) from exc
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    text = data.decode("utf-8").strip()
    try:
        if text.startswith("{") and "\n{" not in text:
            doc = json.loads(text)
            return list(doc.get("incidents", [doc]))
        if text.startswith("["):
            return list(json.loads(text))
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except (json.JSONDecodeError, AttributeError) as exc:
        raise DataValidationError(
            [RuleViolation("statuspage", None, "JSON or JSON lines of incidents", [str(exc)[:200]], file=str(source))]
        ) from exc


def _ms(text: str | None) -> int | None:
    return parse_time(text)


def import_statuspage(
    source: str | Path,
    out_dir: str | Path,
    *,
    resolution_min: int = 60,
    overlay: str | None = None,
    stale_open_h: float = 72,
) -> ImportReport:
    """Write services, health_checks, incidents (+ defaults) and ``_import_summary.json`` to ``out_dir``."""
    incidents = sorted(
        read_statuspage_incidents(source), key=lambda i: (i.get("started_at") or i["created_at"], i["id"])
    )
    names: dict[str, str] = {}
    episodes: list[Episode] = []
    rows, end_ms = [], 0
    for inc in incidents:
        touched: dict[str, Episode] = {}
        for comp in inc.get("components") or []:
            code = comp.get("code") or comp["id"]
            names[code] = comp["name"]
            touched.setdefault(code, Episode(inc["id"], code))
        for upd in sorted(inc.get("incident_updates") or [], key=lambda u: u.get("display_at") or u["created_at"]):
            t = _ms(upd.get("display_at") or upd["created_at"])
            end_ms = max(end_ms, t)
            for a in upd.get("affected_components") or []:
                names[a["code"]] = a["name"]
                rank = RANK[STATUS_MAP.get(a.get("new_status"), "degraded")]
                touched.setdefault(a["code"], Episode(inc["id"], a["code"])).points.append((t, rank))
        resolved = _ms(inc.get("resolved_at"))
        if resolved is not None:
            end_ms = max(end_ms, resolved)
        for ep in touched.values():
            ep.resolved_ms = resolved
            episodes.append(ep)
        rows.append((inc, set(touched), resolved))
    events, stale = component_events(episodes, end_ms, stale_open_h)
    ids = _service_ids(names)
    out_incidents = [
        {
            "incident_id": inc["id"],
            "started_at": datetime.fromtimestamp(_ms(inc.get("started_at") or inc["created_at"]) / 1000, UTC),
            "resolved_at": None
            if resolved is None
            else datetime.fromtimestamp(max(resolved, _ms(inc.get("started_at") or inc["created_at"])) / 1000, UTC),
            "severity": _SEVERITY.get(inc.get("impact") or "none", 4),
            "affected": sorted(ids[c] for c in touched),
            "summary": inc.get("name"),
        }
        for inc, touched, resolved in rows
    ]
    health, sites = [], []
    for code in sorted(names, key=lambda c: ids[c]):
        rep = SiteReport(code, ids[code], "named by incidents")
        rep.checks_seen = sum(1 for _, touched, _ in rows if code in touched)
        series = events.get(code)
        if series:
            arr = np.array(series, dtype=np.int64)
            n = arr.shape[0]
            table = resample_events(
                ids[code], "statuspage", arr[:, 0], arr[:, 1], np.full(n, np.nan), np.zeros(n, np.int64),
                end_ms, resolution_min,
            )  # fmt: skip
            health.append(table)
            rep.spans = [Span(int(arr[0, 0]) + 1, end_ms, "end of data")]
            rep.health_checks = table.num_rows
            rep.down_events = sum(1 for (_, a), (_, b) in zip(series, series[1:]) if b == RANK["down"] != a)
        else:
            rep.notes.append("no update ever gave it a status: no health checks")
        sites.append(rep)
    services = pa.Table.from_pylist(
        [
            {"service_id": ids[c], "kind": "saas", "tier": 1, "capacity": 0.0, "region": None}
            for c in sorted(names, key=lambda c: ids[c])
        ],
        schema=TABLES["services"],
    )
    start_ms = min((e[0][0] for e in events.values()), default=end_ms)
    report = ImportReport(str(source), "statuspage", start_ms, end_ms, sites)
    never = sum(1 for _, _, r in rows if r is None)
    report.notes.append(
        f"{len(rows)} incident(s); {never} never resolved, of which {len(stale)} closed at their last update "
        f"(no update for over {stale_open_h:g} h before the end)"
    )
    report.notes.append(
        f"{sum(1 for _, t, _ in rows if not t)} incident(s) name no component: kept as incidents affecting nothing"
    )
    report.rows = write_tables(
        Path(out_dir),
        services,
        health,
        pa.Table.from_pylist(out_incidents, schema=TABLES["incidents"]),
        overlay,
        partition="month" if (end_ms - start_ms) / 86_400_000 > 400 else "day",
    )
    (Path(out_dir) / SUMMARY_FILE).write_text(report.to_json())
    return report


def _service_ids(names: dict[str, str]) -> dict[str, str]:
    """component code -> slug of its latest name (code appended when two components share a slug)."""
    slugs: dict[str, list[str]] = {}
    for code, name in sorted(names.items()):
        slugs.setdefault(slugify(name), []).append(code)
    return {code: slug if len(codes) == 1 else f"{slug}-{code}" for slug, codes in slugs.items() for code in codes}
