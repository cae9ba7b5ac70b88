"""Import the public incident histories of cloud providers: Google Cloud and AWS.

**Google Cloud** (``https://status.cloud.google.com/incidents.json``): a list of incidents,
each with ``id``, ``begin``, ``end`` (absent or null while open), ``severity``
(low/medium/high), ``status_impact``, ``affected_products`` (``title``, ``id``), ``service_key``
/ ``service_name`` and ``updates`` (``when``/``created``, ``status``, ``text``). Update statuses:
SERVICE_OUTAGE -> down, SERVICE_DISRUPTION -> degraded, SERVICE_INFORMATION and AVAILABLE -> up.
The state at ``begin`` is the first update's status (``status_impact``, the incident's overall
impact, when no update is timed at the start). A product is a service named after
its latest title (products are renamed over the years; the ``id`` stays); an incident without
products falls back to its ``service_key``/``service_name``, and one with neither is kept as
an incident affecting nothing (counted in the report).

**AWS Health Dashboard history** (``historyevents.json``, UTF-8 or UTF-16): an object from a
service key (``ec2-us-east-1``) to its events, each with ``arn``, ``service_name``, ``date``
(epoch seconds), ``status`` and ``event_log`` (``timestamp``, ``status``, ``summary``), and in
newer events ``impacted_services`` and ``impacted_service_status_changes`` (per service
``current_status`` over time). Status codes: 0 resolved -> up, 1 informational and 2 degraded
-> degraded, 3 disrupted -> down. An event is resolved at its last status-0 log entry (or the
service's last status-0 change).

Both then go through :mod:`policies.telemetry.importers.episodes` (worst state of overlapping
incidents, never-resolved ones closed when stale, time zones) and are written like the
Statuspage import: services (kind ``saas``, tier 1), health checks resampled to
``resolution_min``, incidents (severity 1 = outage/high/3 .. 4 = informational).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from policies.errors import DataValidationError, RuleViolation
from policies.schema import TABLES
from policies.telemetry.importers.common import RANK, resample_events, slugify, write_tables
from policies.telemetry.importers.episodes import Episode, TimeReader, component_events
from policies.telemetry.importers.report import SUMMARY_FILE, ImportReport, SiteReport, Span

__all__ = ["import_gcp", "import_aws", "read_json_document", "GCP_STATUS", "AWS_STATUS"]

GCP_STATUS = {"SERVICE_OUTAGE": "down", "SERVICE_DISRUPTION": "degraded", "SERVICE_INFORMATION": "up"}
GCP_STATUS |= {"AVAILABLE": "up"}
AWS_STATUS = {0: "up", 1: "degraded", 2: "degraded", 3: "down"}
_GCP_SEVERITY = {"high": 1, "medium": 2, "low": 3}


def read_json_document(source: str | Path, kind: str) -> object:
    """The parsed JSON of a file or fsspec URL (UTF-8 or UTF-16 with a BOM, gzipped or not)."""
    import gzip

    import fsspec

    try:
        with fsspec.open(str(source), "rb") as f:
            data = f.read()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        text = data.decode("utf-16") if data[:2] in (b"\xff\xfe", b"\xfe\xff") else data.decode("utf-8-sig")
        return json.loads(text)
    except (OSError, ValueError) as exc:
        raise DataValidationError(
            [RuleViolation(kind, None, "readable JSON document", [str(exc)[:200]], file=str(source))]
        ) from exc


def _gcp(doc: object, when: TimeReader) -> tuple[list[Episode], list[dict], dict[str, str]]:
    incidents = doc if isinstance(doc, list) else (doc or {}).get("incidents", [])
    names: dict[str, tuple[int, str]] = {}  # component id -> (time of the name, latest name)
    episodes, rows = [], []
    for inc in incidents:
        begin = when(inc.get("begin") or inc.get("created"))
        if begin is None:
            continue
        comps = [
            (p.get("id") or slugify(p.get("title", "")), p.get("title") or p.get("id"))
            for p in inc.get("affected_products") or []
        ]
        if not comps and (inc.get("service_key") or inc.get("service_name")):
            comps = [
                (inc.get("service_key") or slugify(inc["service_name"]), inc.get("service_name") or inc["service_key"])
            ]
        for cid, title in comps:
            if cid not in names or names[cid][0] <= begin:
                names[cid] = (begin, title)
        updates = sorted(
            ((when(u.get("when") or u.get("created")), u.get("status")) for u in inc.get("updates") or []),
            key=lambda u: u[0] if u[0] is not None else begin,
        )
        timed = [(t, RANK[GCP_STATUS.get(s, "degraded")]) for t, s in updates if t is not None and s != "AVAILABLE"]
        opening = next((r for t, r in timed if t <= begin), None)  # the update at the start, else the overall impact
        first = RANK[GCP_STATUS.get(inc.get("status_impact"), "degraded")] if opening is None else opening
        points = [(begin, first)] + [(t, r) for t, r in timed if t > begin]
        end = when(inc.get("end"))
        episodes += [Episode(str(inc.get("id")), cid, list(points), end) for cid, _ in comps]
        severity = 1 if inc.get("status_impact") == "SERVICE_OUTAGE" else _GCP_SEVERITY.get(inc.get("severity"), 4)
        rows.append({"id": str(inc.get("id")), "begin": begin, "end": end, "severity": severity,
                     "components": [c for c, _ in comps], "summary": inc.get("external_desc")})  # fmt: skip
    return episodes, rows, {c: n for c, (_, n) in names.items()}


def _aws(doc: object, when: TimeReader) -> tuple[list[Episode], list[dict], dict[str, str]]:
    if not isinstance(doc, dict):
        raise DataValidationError(
            [RuleViolation("aws", None, "an object of service key -> events", [type(doc).__name__])]
        )
    names: dict[str, str] = {}
    episodes, rows = [], []
    for key, events in sorted(doc.items()):
        for ev in events if isinstance(events, list) else []:
            begin = when(ev.get("date"))
            if begin is None:
                continue
            impacted = ev.get("impacted_services") or {}
            comps = sorted(impacted) or [ev.get("service") or key]
            for c in comps:
                names[c] = (impacted.get(c) or {}).get("service_name") or ev.get("service_name") or c
            log = sorted(
                (when(e.get("timestamp")), _code(e.get("status")))
                for e in ev.get("event_log") or []
                if when(e.get("timestamp")) is not None
            )
            changes = ev.get("impacted_service_status_changes") or []
            ends = []
            for c in comps:
                own = sorted(
                    (when(ch.get("timestamp")), _code(ch.get("current_status")))
                    for ch in changes
                    if ch.get("service") == c and when(ch.get("timestamp")) is not None
                )
                series = own or log
                points = [(t, RANK[AWS_STATUS.get(s, "degraded")]) for t, s in series if s != 0]
                points = points or [(begin, RANK[AWS_STATUS.get(_code(ev.get("status")), "degraded")])]
                resolved = max((t for t, s in series if s == 0), default=None)
                if resolved is None and _code(ev.get("status")) == 0 and series:
                    resolved = series[-1][0]
                episodes.append(Episode(str(ev.get("arn") or f"{key}-{begin}"), c, points, resolved))
                ends.append(resolved)
            peak = max((s for _, s in log), default=_code(ev.get("status")) or 1)
            rows.append({"id": str(ev.get("arn") or f"{key}-{begin}"), "begin": begin,
                         "end": None if None in ends else max(ends, default=None), "severity": {3: 1, 2: 2}.get(peak, 3),
                         "components": comps, "summary": ev.get("summary")})  # fmt: skip
    return episodes, rows, names


def _code(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _import(
    reader: Callable, kind: str, source, out_dir, resolution_min: int, overlay, stale_open_h: float
) -> ImportReport:
    when = TimeReader()
    episodes, rows, names = reader(read_json_document(source, kind), when)
    if not rows:
        raise DataValidationError(
            [RuleViolation(kind, None, "at least one incident with a start time", [], file=str(source))]
        )
    end_ms = max(
        max((r["end"] or r["begin"]) for r in rows), max(t for e in episodes for t, _ in e.points) if episodes else 0
    )
    events, stale = component_events(episodes, end_ms, stale_open_h)
    ids = _service_ids(names)
    sites, health = [], []
    for comp in sorted(names, key=lambda c: ids[c]):
        ev = events.get(comp)
        rep = SiteReport(comp, ids[comp], "named by incidents" if ev else "named by incidents without a timed status")
        if ev:
            arr = np.array(ev, dtype=np.int64)
            table = resample_events(
                ids[comp],
                kind,
                arr[:, 0],
                arr[:, 1],
                np.full(len(ev), np.nan),
                np.zeros(len(ev), np.int64),
                end_ms,
                resolution_min,
            )
            health.append(table)
            rep.spans = [Span(int(arr[0, 0]) + 1, end_ms, "end of data")]
            rep.health_checks = table.num_rows
            rep.down_events = int(sum(1 for (_, a), (_, b) in zip(ev, ev[1:]) if b == RANK["down"] != a))
        rep.checks_seen = sum(1 for r in rows if comp in r["components"])
        if names[comp] != comp and slugify(names[comp]) != ids[comp]:
            rep.notes.append(f"named {names[comp]!r}")
        sites.append(rep)
    if not health:
        raise DataValidationError([RuleViolation(kind, None, "an incident naming a component", [], file=str(source))])
    out_rows = [{"incident_id": r["id"], "started_at": _dt(r["begin"]), "resolved_at": _dt(r["end"] if r["end"] is None else max(r["end"], r["begin"])),
                 "severity": r["severity"], "affected": sorted({ids[c] for c in r["components"]}), "summary": r["summary"]} for r in rows]  # fmt: skip
    report = ImportReport(str(source), kind, min(r["begin"] for r in rows), end_ms, sites)
    open_ = sum(1 for r in rows if r["end"] is None)
    report.notes += [
        f"{len(rows)} incident(s); {open_} never resolved, of which {len(stale)} closed at their last update (no update for over {stale_open_h:g} h before the end)"
    ]
    report.notes += [
        f"{sum(1 for r in rows if not r['components'])} incident(s) name no component: kept as incidents affecting nothing"
    ]
    if when.naive or when.unreadable:
        report.notes.append(
            f"{when.naive} time(s) without an offset read as UTC; {when.unreadable} unreadable time(s) skipped"
        )
    services = pa.Table.from_pylist(
        [
            {"service_id": ids[c], "kind": "saas", "tier": 1, "capacity": 0.0, "region": None}
            for c in sorted(names, key=lambda c: ids[c])
            if c in events
        ],
        schema=TABLES["services"],
    )
    report.rows = write_tables(Path(out_dir), services, health, pa.Table.from_pylist(out_rows, schema=TABLES["incidents"]), overlay,
                               partition="month" if end_ms - report.start_ms > 400 * 86_400_000 else "day")  # fmt: skip
    (Path(out_dir) / SUMMARY_FILE).write_text(report.to_json())
    return report


def _dt(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


def _service_ids(names: dict[str, str]) -> dict[str, str]:
    slugs: dict[str, list[str]] = {}
    for comp, name in sorted(names.items()):
        slugs.setdefault(slugify(name), []).append(comp)
    return {c: s if len(cs) == 1 else f"{s}-{slugify(c)}" for s, cs in slugs.items() for c in cs}


def import_gcp(
    source, out_dir, *, resolution_min: int = 60, overlay: str | None = None, stale_open_h: float = 72
) -> ImportReport:
    """Import a Google Cloud status ``incidents.json`` (see the module docstring)."""
    return _import(_gcp, "gcp", source, out_dir, resolution_min, overlay, stale_open_h)


def import_aws(
    source, out_dir, *, resolution_min: int = 60, overlay: str | None = None, stale_open_h: float = 72
) -> ImportReport:
    """Import an AWS Health Dashboard ``historyevents.json`` (see the module docstring)."""
    return _import(_aws, "aws", source, out_dir, resolution_min, overlay, stale_open_h)
