"""What an import did, in a form a person can check: sites kept and dropped (and why), spans, counts.

Every importer returns an :class:`ImportReport`; the CLI prints :meth:`ImportReport.text` and
the importer writes :meth:`ImportReport.as_dict` next to the tables as ``_import_summary.json``
(the leading underscore keeps it out of the telemetry tables).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = ["Span", "SiteReport", "ImportReport", "iso", "SUMMARY_FILE"]

SUMMARY_FILE = "_import_summary.json"


def iso(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Span:
    """A stretch of time during which a site existed (was listed and checked)."""

    start_ms: int
    end_ms: int
    ended_by: str

    def as_dict(self) -> dict:
        return {"start": iso(self.start_ms), "end": iso(self.end_ms), "ended_by": self.ended_by}


@dataclass
class SiteReport:
    """One site (Upptime history file, Statuspage component) and what became of it."""

    site: str
    service_id: str | None  # None when dropped
    reason: str  # why kept or dropped, in words
    spans: list[Span] = field(default_factory=list)
    checks_seen: int = 0  # status records read from the source
    down_events: int = 0  # changes into "down"
    health_checks: int = 0  # rows written
    notes: list[str] = field(default_factory=list)

    @property
    def kept(self) -> bool:
        return self.service_id is not None

    def as_dict(self) -> dict:
        return {
            "site": self.site,
            "service_id": self.service_id,
            "kept": self.kept,
            "reason": self.reason,
            "spans": [s.as_dict() for s in self.spans],
            "checks_seen": self.checks_seen,
            "down_events": self.down_events,
            "health_checks": self.health_checks,
            "notes": self.notes,
        }


@dataclass
class ImportReport:
    """The whole import: per-site reports, rows written per table, notes on the source as a whole."""

    source: str
    kind: str
    start_ms: int | None
    end_ms: int | None
    sites: list[SiteReport]
    rows: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def kept(self) -> list[SiteReport]:
        return [s for s in self.sites if s.kept]

    @property
    def dropped(self) -> list[SiteReport]:
        return [s for s in self.sites if not s.kept]

    def site(self, name: str) -> SiteReport:
        return next(s for s in self.sites if name in (s.site, s.service_id))

    def as_dict(self) -> dict:
        return {
            "source": self.source,
            "kind": self.kind,
            "start": iso(self.start_ms),
            "end": iso(self.end_ms),
            "sites_kept": len(self.kept),
            "sites_dropped": len(self.dropped),
            "down_events": sum(s.down_events for s in self.kept),
            "rows": dict(sorted(self.rows.items())),
            "notes": self.notes,
            "sites": [s.as_dict() for s in self.sites],
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, sort_keys=False) + "\n"

    def text(self) -> str:
        """A few lines per site: what a person checks after an import."""
        lines = [
            f"{self.kind} import of {self.source}: {iso(self.start_ms)} .. {iso(self.end_ms)}; "
            f"kept {len(self.kept)} site(s), dropped {len(self.dropped)}; "
            f"{sum(s.down_events for s in self.kept)} down event(s); "
            + ", ".join(f"{k}={v:,}" for k, v in sorted(self.rows.items()))
        ]
        lines += [f"  note: {n}" for n in self.notes]
        for s in self.kept:
            spans = "; ".join(f"{_day(p.start_ms)}..{_day(p.end_ms)} ({p.ended_by})" for p in s.spans)
            name = s.service_id if s.service_id == s.site else f"{s.service_id} (from {s.site})"
            lines.append(
                f"  kept {name}: {s.down_events} down event(s), {s.health_checks:,} checks written; spans {spans}"
            )
            lines += [f"    note: {n}" for n in s.notes]
        for s in self.dropped:
            lines.append(f"  dropped {s.site}: {s.reason}")
        return "\n".join(lines)


def _day(ms: int) -> str:
    return (iso(ms) or "")[:16].replace("T", " ")
