"""Health checks and incidents out of Prometheus (the blackbox exporter's series by default).

Range queries (``/api/v1/query_range``) return every series at ``step_s``; each point is the
probe's state at that moment: down when ``probe_success`` < 0.5, degraded when its
``probe_duration_seconds`` is above ``degraded_ms``, else up. Those points are an event log
(each series ends at its last point: no data is not carried forward), resampled like the status importers (worst state per ``resolution_min`` bin,
:func:`~policies.telemetry.importers.common.resample_events`), so an outage seen at one step is
never averaged away. ``service_id`` comes from the first present label of ``service_labels``
(``instance``, then ``job``; slugified unless ``service_map`` names it); the probe from the
``probe_label`` label, else ``prom-<server host>`` (one probe per Prometheus server).

Incidents are the down spans at step resolution (start = first down point, end = first point
after it that is not down; open at the range's end = unresolved), or, when ``alerts`` names
alert rules, the firing intervals of ``ALERTS{alertstate="firing"}`` (severity from the
alert's ``severity`` label). A range is split into queries of at most ``max_points`` points
per series (Prometheus refuses more than 11,000).
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from policies.schema import TABLES
from policies.telemetry.importers.common import RANK, resample_events, slugify
from policies.telemetry.importers.http import ConnectorError, HttpClient, auth_headers

__all__ = ["PrometheusSpec", "PrometheusPull", "fetch_prometheus", "query_range", "chunks"]

_SEVERITY = {"critical": 1, "page": 1, "error": 2, "high": 2, "warning": 3, "warn": 3, "info": 4, "low": 4}


@dataclass(frozen=True)
class PrometheusSpec:
    """Where and what to query; every field is a key of a ``[sources.<name>]`` entry."""

    url: str
    step_s: int = 60
    resolution_min: int = 5
    success_query: str = "probe_success"
    duration_query: str = "probe_duration_seconds"
    code_query: str = "probe_http_status_code"
    service_labels: tuple[str, ...] = ("instance", "job")
    service_map: dict[str, str] = field(default_factory=dict)
    probe_label: str = "probe"
    degraded_ms: float | None = None
    alerts: tuple[str, ...] = ()
    token_env: str = "PROMETHEUS_TOKEN"
    username_env: str = "PROMETHEUS_USERNAME"
    password_env: str = "PROMETHEUS_PASSWORD"
    timeout_s: float = 30.0
    retries: int = 4
    max_points: int = 11_000

    def client(self) -> HttpClient:
        return HttpClient(
            "prometheus",
            auth_headers(self.token_env, self.username_env, self.password_env),
            timeout_s=self.timeout_s,
            retries=self.retries,
            auth_hint=f"set ${self.token_env} (bearer) or ${self.username_env}/${self.password_env} (basic auth)",
        )

    def service(self, labels: dict[str, str]) -> str | None:
        for name in self.service_labels:
            if labels.get(name):
                value = labels[name]
                return self.service_map.get(value) or slugify(value)
        return None


@dataclass
class PrometheusPull:
    """What one range gave: tables (not written yet) and what was asked of the server."""

    services: list[str]
    health: list[pa.Table]
    incidents: pa.Table
    requests: int
    since_ms: int
    until_ms: int

    @property
    def rows(self) -> int:
        return sum(t.num_rows for t in self.health)


def chunks(start_s: int, end_s: int, step_s: int, max_points: int) -> list[tuple[int, int]]:
    """Inclusive [start, end] ranges on the step grid, each at most ``max_points`` points."""
    span = (max_points - 1) * step_s
    out, s = [], start_s
    while s <= end_s:
        out.append((s, min(s + span, end_s)))
        s += span + step_s
    return out


def query_range(
    spec: PrometheusSpec, client: HttpClient, query: str, start_s: int, end_s: int
) -> dict[tuple, tuple[dict, list]]:
    """Every series of ``query`` over [start, end] (chunked): label key -> (labels, [(t_s, value)])."""
    api = spec.url.rstrip("/") + "/api/v1/query_range"
    out: dict[tuple, tuple[dict, list]] = {}
    for a, b in chunks(start_s, end_s, spec.step_s, spec.max_points):
        try:
            doc = client.get_json(api, {"query": query, "start": a, "end": b, "step": spec.step_s})
        except ConnectorError as exc:
            raise ConnectorError(f"{exc} (query {query!r})") from None
        if not isinstance(doc, dict) or doc.get("status") != "success":
            raise ConnectorError(f"prometheus: query {query!r} failed: {str(doc)[:200]}")
        for series in doc["data"]["result"]:
            labels = series["metric"]
            key = tuple(sorted(labels.items()))
            out.setdefault(key, (labels, []))[1].extend((float(t), float(v)) for t, v in series["values"])
    return out


def fetch_prometheus(spec: PrometheusSpec, since_ms: int, until_ms: int) -> PrometheusPull:
    """Health checks and incidents of [since, until): points from ``since`` to ``until - step``."""
    step_ms = spec.step_s * 1000
    start_s = -(-since_ms // step_ms) * spec.step_s
    end_s = (until_ms - 1) // step_ms * spec.step_s
    if end_s < start_s:
        raise ConnectorError(f"prometheus: empty range {_iso(since_ms)} .. {_iso(until_ms)}; widen --since/--until")
    client = spec.client()
    default_probe = "prom-" + slugify(urllib.parse.urlsplit(spec.url).netloc)
    points: dict[tuple[str, str], dict[int, list]] = {}
    for kind, query in (("success", spec.success_query), ("duration", spec.duration_query), ("code", spec.code_query)):
        if not query:
            continue
        for labels, values in query_range(spec, client, query, start_s, end_s).values():
            service = spec.service(labels)
            if service is None:
                continue
            slot = points.setdefault((service, labels.get(spec.probe_label) or default_probe), {})
            for t, v in values:
                row = slot.setdefault(int(round(t * 1000)), [None, None, None])
                i = ("success", "duration", "code").index(kind)
                row[i] = v if row[i] is None or kind != "success" else min(row[i], v)
    last_ms = end_s * 1000
    health, spans = [], []
    for (service, probe), slot in sorted(points.items()):
        rows = sorted((t, r) for t, r in slot.items() if r[0] is not None)
        if not rows:
            continue
        t = np.array([r[0] for r in rows], dtype=np.int64)
        dur = np.array([np.nan if r[1][1] is None else r[1][1] * 1000 for r in rows])
        ok = np.array([r[1][0] for r in rows]) >= 0.5
        slow = ~np.isnan(dur) & (dur > spec.degraded_ms) if spec.degraded_ms is not None else np.zeros(t.size, bool)
        rank = np.where(~ok, RANK["down"], np.where(slow, RANK["degraded"], RANK["up"])).astype(np.int64)
        code = np.array([0 if r[1][2] is None else int(r[1][2]) for r in rows], dtype=np.int64)
        health.append(resample_events(service, probe, t, rank, dur, code, int(t[-1]), spec.resolution_min))
        spans += [(service, s, e) for s, e in down_spans(t, rank == RANK["down"], step_ms, last_ms)]
    services = sorted({s for s, _ in points})
    if spec.alerts:
        incidents = _alert_incidents(spec, client, start_s, end_s)
    else:
        incidents = [_incident(s, a, b, 2, f"{s} down (prometheus)") for s, a, b in sorted(spans)]
    return PrometheusPull(
        services,
        health,
        pa.Table.from_pylist(incidents, schema=TABLES["incidents"]),
        client.requests,
        since_ms,
        until_ms,
    )


def down_spans(t_ms: np.ndarray, down: np.ndarray, step_ms: int, last_ms: int) -> list[tuple[int, int | None]]:
    """[start, end) of every run of down points; a gap longer than a step ends a run (no data is not down).

    Only a run still down at ``last_ms`` (the last queried point) is open (end None).
    """
    out, start, prev = [], None, None
    for t, d in zip(t_ms.tolist(), down.tolist()):
        if start is not None and (not d or t - prev > step_ms):
            out.append((start, t if not d else prev + step_ms))
            start = None
        if d and start is None:
            start = t
        prev = t
    if start is not None:
        out.append((start, None if prev >= last_ms else prev + step_ms))
    return out


def _alert_incidents(spec: PrometheusSpec, client: HttpClient, start_s: int, end_s: int) -> list[dict]:
    names = "|".join(a.replace('"', "") for a in spec.alerts)
    # last_over_time over one step (less a millisecond: 2.x ranges include both ends): a point only where the
    # alert was written inside that step; backfilled data has no staleness markers, and a resolved alert must
    # not linger for the 5-minute lookback
    query = f'last_over_time(ALERTS{{alertstate="firing",alertname=~"{names}"}}[{spec.step_s * 1000 - 1}ms])'
    step_ms = spec.step_s * 1000
    out = []
    for labels, values in query_range(spec, client, query, start_s, end_s).values():
        service = spec.service(labels)
        if service is None:
            continue
        t = np.array(sorted(int(round(x * 1000)) for x, _ in values), dtype=np.int64)
        runs = down_spans(t, np.ones(t.size, bool), step_ms, end_s * 1000)
        sev = _SEVERITY.get(str(labels.get("severity", "")).lower(), 2)
        for a, b in runs:  # a run reaching the last queried point may still be firing: unresolved
            inc = _incident(service, a, b, sev, f"{labels.get('alertname')} firing on {service}")
            out.append(inc | {"incident_id": f"{labels.get('alertname')}-{inc['incident_id']}"})
    return sorted(out, key=lambda r: (r["started_at"], r["incident_id"]))


def _incident(service: str, start: int, end: int | None, severity: int, summary: str) -> dict:
    return {
        "incident_id": f"{service}-{start}",
        "started_at": _dt(start),
        "resolved_at": None if end is None else _dt(end),
        "severity": severity,
        "affected": [service],
        "summary": summary,
    }


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _iso(ms: int) -> str:
    return _dt(ms).isoformat()
