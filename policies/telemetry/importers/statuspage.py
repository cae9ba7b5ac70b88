"""Import an Atlassian Statuspage incidents export: incidents, components and their status over time.

Input: the incidents API's JSON (``{"incidents": [...]}`` or a list) or JSON lines (one incident
per line), optionally gzipped, from a file or an fsspec URL. Each component (by its ``code``,
named after its latest name) becomes a service (kind ``saas``, tier 1). Its status starts
``operational`` at its first mention and follows every update's ``new_status`` (carried forward
from update to update); at an incident's ``resolved_at`` every component it touched returns to
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
    return None if not text else int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def import_statuspage(
    source: str | Path, out_dir: str | Path, *, resolution_min: int = 60, overlay: str | None = None
) -> dict[str, int]:
    """Write services, health_checks, incidents (+ default dependencies, workloads) to ``out_dir``."""
    incidents = sorted(
        read_statuspage_incidents(source), key=lambda i: (i.get("started_at") or i["created_at"], i["id"])
    )
    names: dict[str, str] = {}
    events: dict[str, list[tuple[int, int]]] = {}
    rows, end_ms = [], 0
    for inc in incidents:
        touched = set()
        for comp in inc.get("components") or []:
            names[comp["code"] if "code" in comp else comp["id"]] = comp["name"]
            touched.add(comp.get("code") or comp["id"])
        for upd in sorted(inc.get("incident_updates") or [], key=lambda u: u.get("display_at") or u["created_at"]):
            t = _ms(upd.get("display_at") or upd["created_at"])
            end_ms = max(end_ms, t)
            for a in upd.get("affected_components") or []:
                names[a["code"]] = a["name"]
                touched.add(a["code"])
                series = events.setdefault(a["code"], [])
                if not series:
                    series.append((t - 1, RANK["up"]))
                series.append((t, RANK[STATUS_MAP.get(a.get("new_status"), "degraded")]))
        resolved = _ms(inc.get("resolved_at"))
        if resolved is not None:
            end_ms = max(end_ms, resolved)
            for code in touched & events.keys():
                events[code].append((resolved, RANK["up"]))
        rows.append((inc, touched, resolved))
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
    health = []
    for code, series in sorted(events.items(), key=lambda kv: ids[kv[0]]):
        arr = np.array(sorted(series, key=lambda e: e[0]), dtype=np.int64)
        n = arr.shape[0]
        health.append(
            resample_events(
                ids[code],
                "statuspage",
                arr[:, 0],
                arr[:, 1],
                np.full(n, np.nan),
                np.zeros(n, dtype=np.int64),
                end_ms,
                resolution_min,
            )
        )
    services = pa.Table.from_pylist(
        [
            {"service_id": ids[c], "kind": "saas", "tier": 1, "capacity": 0.0, "region": None}
            for c in sorted(names, key=lambda c: ids[c])
        ],
        schema=TABLES["services"],
    )
    span_days = (end_ms - min((e[0][0] for e in events.values()), default=end_ms)) / 86_400_000
    return write_tables(
        Path(out_dir),
        services,
        health,
        pa.Table.from_pylist(out_incidents, schema=TABLES["incidents"]),
        overlay,
        partition="month" if span_days > 400 else "day",
    )


def _service_ids(names: dict[str, str]) -> dict[str, str]:
    """component code -> slug of its latest name (code appended when two components share a slug)."""
    slugs: dict[str, list[str]] = {}
    for code, name in sorted(names.items()):
        slugs.setdefault(slugify(name), []).append(code)
    return {code: slug if len(codes) == 1 else f"{slug}-{code}" for slug, codes in slugs.items() for code in codes}
