"""Which incidents a re-solve is about, and which dependencies they touched.

``qres resolve --incident ID`` (or ``--since TIME``) re-fits and re-solves after an
incident; the incidents' ``affected`` services are the dependencies in scope. Also
:func:`append_incident_day`, which writes one more day of telemetry with a real outage
and its incident record into a *copy* of a telemetry folder (the benchmark, the tests
and a demo of the re-solve path use it; inputs are never modified in place).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from policies.errors import ConfigError

__all__ = ["IncidentScope", "select_incidents", "append_incident_day"]


class IncidentScope(tuple):
    """(incident ids, affected dependencies), both sorted."""

    @property
    def incident_ids(self) -> tuple[str, ...]:
        return self[0]

    @property
    def dependencies(self) -> tuple[str, ...]:
        return self[1]


def _utc(ts: dt.datetime | str) -> dt.datetime:
    value = dt.datetime.fromisoformat(ts) if isinstance(ts, str) else ts
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def select_incidents(
    incidents: pa.Table,
    *,
    incident_id: str | None = None,
    since: dt.datetime | str | None = None,
    origin: str = "incidents",
) -> IncidentScope:
    """The incident named ``incident_id``, or every incident started or resolved at/after ``since``."""
    if (incident_id is None) == (since is None):
        raise ConfigError("name exactly one of an incident id (--incident) or a time (--since)")
    ids = incidents.column("incident_id").to_pylist()
    if incident_id is not None:
        if incident_id not in ids:
            known = ", ".join(sorted(ids)[-5:]) or "none"
            raise ConfigError(
                f"{origin}: no incident with incident_id {incident_id!r} (latest ids: {known}); "
                "ingest its telemetry first or check the id"
            )
        rows = [ids.index(incident_id)]
    else:
        start = pa.scalar(_utc(since), type=pa.timestamp("ms", tz="UTC"))
        started = pc.cast(incidents.column("started_at"), pa.timestamp("ms", tz="UTC"))
        resolved = pc.cast(incidents.column("resolved_at"), pa.timestamp("ms", tz="UTC"))
        hit = pc.or_kleene(pc.greater_equal(started, start), pc.greater_equal(resolved, start))
        rows = [i for i, h in enumerate(hit.to_pylist()) if h]
        if not rows:
            raise ConfigError(f"{origin}: no incident started or resolved since {_utc(since).isoformat()}")
    affected = incidents.column("affected").to_pylist()
    deps = sorted({d for i in rows for d in (affected[i] or [])})
    return IncidentScope((tuple(sorted(ids[i] for i in rows)), tuple(deps)))


def append_incident_day(
    data_dir: str | Path, *, dependency: str, incident_id: str, outage_min: int = 90, severity: int = 2
) -> Path:
    """Add the day after the newest health-check day: a copy of that day shifted by 24 h, with
    ``dependency`` down for ``outage_min`` minutes from 10:00 UTC, plus its incident record.

    Writes a new day file and rewrites ``incidents.parquet`` (temp file + rename) in
    ``data_dir``, which must be the caller's own copy. Returns the new day file.
    """
    folder = Path(data_dir)
    days = sorted((folder / "health_checks").glob("*.parquet"))
    if not days:
        raise ConfigError(f"{folder}/health_checks: no day files to extend")
    last = pq.read_table(days[-1])
    day = dt.date.fromisoformat(days[-1].stem) + dt.timedelta(days=1)
    target = folder / "health_checks" / f"{day.isoformat()}.parquet"
    if target.exists():
        raise ConfigError(f"{target} exists already; append to a fresh copy")
    ts_type = last.schema.field("ts").type
    shifted = pc.add(pc.cast(last.column("ts"), pa.int64()), 86_400_000 if ts_type.unit == "ms" else 86_400_000_000)
    ts = pc.cast(shifted, ts_type)
    start = dt.datetime.combine(day, dt.time(10, 0), tzinfo=dt.UTC)
    end = start + dt.timedelta(minutes=outage_min)
    ts_py = np.asarray(pc.cast(ts, pa.int64()))
    unit = 1000 if ts_type.unit == "ms" else 1_000_000
    in_window = (ts_py >= int(start.timestamp()) * unit) & (ts_py < int(end.timestamp()) * unit)
    is_dep = np.asarray(pc.equal(last.column("service_id"), dependency).to_numpy(zero_copy_only=False))
    if not is_dep.any():
        raise ConfigError(f"{days[-1]}: no health checks of {dependency!r}")
    hit = pa.array(in_window & is_dep)
    status = pc.if_else(hit, pa.scalar("down", last.schema.field("status").type), last.column("status"))
    table = last.set_column(last.schema.get_field_index("ts"), "ts", ts)
    table = table.set_column(table.schema.get_field_index("status"), "status", status)
    _write_atomic(table, target)
    incidents = pq.read_table(folder / "incidents.parquet")
    row = {
        "incident_id": [incident_id],
        "started_at": [start],
        "resolved_at": [end],
        "severity": [severity],
        "affected": [[dependency]],
        "summary": [f"{dependency} down for {outage_min} min"],
    }
    extra = pa.table(
        {
            name: pa.array(row[name], type=incidents.schema.field(name).type)
            if name in row
            else pa.nulls(1, incidents.schema.field(name).type)
            for name in incidents.schema.names
        }
    )
    _write_atomic(pa.concat_tables([incidents, extra.cast(incidents.schema)]), folder / "incidents.parquet")
    return target


def _write_atomic(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    pq.write_table(table, tmp)
    tmp.replace(path)
