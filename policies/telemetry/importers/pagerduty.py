"""PagerDuty incidents (REST API v2, ``GET /incidents``) as the incidents table.

Input is the list format the API returns: ``{"incidents": [...], "limit", "offset", "more",
"total"}``, each incident with ``id``, ``created_at``, ``resolved_at`` (or, for older exports,
``last_status_change_at`` once ``status`` is ``resolved``), ``urgency``, ``priority.summary``
and ``service`` (a service reference with ``id`` and ``summary``). A saved export may be one
page, a list of pages or a bare list of incidents. The live API is paged with ``offset`` /
``limit`` until ``more`` is false (token from ``$PAGERDUTY_TOKEN``, sent as
``Authorization: Token token=...``; 429 waits for ``Retry-After``).

Severity: ``priority_map`` (priority name -> 1..4, default P1..P5 -> 1,2,3,4,4) when the
incident has a priority, else ``urgency_map`` (high -> 2, low -> 3). Affected services: the
incident's service, through ``service_map`` (PagerDuty service id or name -> service_id), else
its name slugified. Unresolved incidents keep ``resolved_at`` null.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from policies.schema import TABLES
from policies.telemetry.importers.common import slugify
from policies.telemetry.importers.http import ConnectorError, HttpClient

__all__ = ["PagerDutySpec", "incident_rows", "fetch_pagerduty", "import_pagerduty", "read_export"]


@dataclass(frozen=True)
class PagerDutySpec:
    url: str = "https://api.pagerduty.com"
    export: str = ""  # a saved GET /incidents export read whole each pull instead of the live API
    token_env: str = "PAGERDUTY_TOKEN"
    page_limit: int = 100
    priority_map: dict[str, int] = field(default_factory=lambda: {"P1": 1, "P2": 2, "P3": 3, "P4": 4, "P5": 4})
    urgency_map: dict[str, int] = field(default_factory=lambda: {"high": 2, "low": 3})
    service_map: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 30.0
    retries: int = 4


def read_export(path: str | Path) -> list[dict]:
    """Incidents of a saved export (one page, a list of pages or a list of incidents)."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConnectorError(f"pagerduty: cannot read {path} as JSON ({exc})") from None
    pages = doc if isinstance(doc, list) and doc and isinstance(doc[0], dict) and "incidents" in doc[0] else [doc]
    out: list[dict] = []
    for page in pages:
        items = page.get("incidents") if isinstance(page, dict) else page
        if not isinstance(items, list):
            raise ConnectorError(f"pagerduty: {path} has no incidents list (expected the GET /incidents format)")
        out += items
    return out


def fetch_pagerduty(spec: PagerDutySpec, since_ms: int | None, until_ms: int | None) -> tuple[list[dict], int]:
    """Every incident of the live API (offset/limit pages until ``more`` is false); returns (incidents, requests)."""
    token = os.environ.get(spec.token_env)
    if not token:
        raise ConnectorError(f"pagerduty: set ${spec.token_env} to an API token to read the live API")
    client = HttpClient(
        "pagerduty",
        {"Authorization": f"Token token={token}", "Accept": "application/vnd.pagerduty+json;version=2"},
        timeout_s=spec.timeout_s,
        retries=spec.retries,
        auth_hint=f"check ${spec.token_env}",
    )
    params: dict[str, object] = {"limit": spec.page_limit, "time_zone": "UTC", "sort_by": "created_at:asc"}
    if since_ms is not None:
        params["since"] = _iso(since_ms)
    if until_ms is not None:
        params["until"] = _iso(until_ms)
    out, offset = [], 0
    while True:
        page = client.get_json(spec.url.rstrip("/") + "/incidents", params | {"offset": offset})
        if not isinstance(page, dict) or not isinstance(page.get("incidents"), list):
            raise ConnectorError("pagerduty: /incidents did not answer the list format (no incidents list)")
        out += page["incidents"]
        if not page.get("more") or not page["incidents"]:
            return out, client.requests
        offset += len(page["incidents"])


def incident_rows(spec: PagerDutySpec, incidents: list[dict]) -> pa.Table:
    """The incidents table (deduplicated by id, sorted by start)."""
    rows: dict[str, dict] = {}
    for inc in incidents:
        try:
            rows[str(inc["id"])] = _row(spec, inc)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConnectorError(
                f"pagerduty: incident {inc.get('id', '?')!r} lacks {exc} (GET /incidents format)"
            ) from None
    ordered = sorted(rows.values(), key=lambda r: (r["started_at"], r["incident_id"]))
    return pa.Table.from_pylist(ordered, schema=TABLES["incidents"])


def import_pagerduty(
    spec: PagerDutySpec,
    out_dir: str | Path,
    *,
    export: str | None = None,
    window: tuple[int | None, int | None] = (None, None),
    replace: bool = False,
) -> dict[str, int]:
    """Write ``incidents.parquet`` into ``out_dir`` (an existing telemetry folder or a new one)."""
    out_dir = Path(out_dir)
    target = out_dir / "incidents.parquet"
    existing = [p for p in (target, out_dir / "incidents") if p.exists()]
    if existing and not replace:
        raise FileExistsError(f"{existing[0]} exists; pass --replace to overwrite it")
    if (out_dir / "incidents").is_dir():
        raise FileExistsError(f"{out_dir / 'incidents'} is a folder of incident files; move it away first")
    incidents = read_export(export) if export else fetch_pagerduty(spec, *window)[0]
    table = incident_rows(spec, incidents)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / ".incidents.parquet.tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, target)
    return {"incidents": table.num_rows}


def _row(spec: PagerDutySpec, inc: dict) -> dict:
    prio = (inc.get("priority") or {}).get("summary") or (inc.get("priority") or {}).get("name")
    if prio and prio in spec.priority_map:
        severity = int(spec.priority_map[prio])
    else:
        severity = int(spec.urgency_map.get(str(inc.get("urgency", "high")), 2))
    resolved = inc.get("resolved_at")
    if not resolved and inc.get("status") == "resolved":
        resolved = inc.get("last_status_change_at")
    service = inc.get("service") or {}
    name = service.get("summary") or service.get("name") or service.get("id")
    sid = spec.service_map.get(str(service.get("id"))) or spec.service_map.get(str(name)) or slugify(str(name))
    return {
        "incident_id": str(inc["id"]),
        "started_at": _ts(inc["created_at"]),
        "resolved_at": _ts(resolved) if resolved else None,
        "severity": min(max(severity, 1), 4),
        "affected": [sid] if name else [],
        "summary": inc.get("title") or inc.get("summary"),
    }


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")).astimezone(UTC)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
