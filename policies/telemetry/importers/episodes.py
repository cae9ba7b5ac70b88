"""Incident episodes on components -> one state timeline per component (what cloud status histories need).

A cloud status history is a list of incidents; each names the components (products,
services) it touched and a few timed status updates. Incidents overlap (two incidents on the
same product at once), some never resolve, and their updates come in any time zone. Here:

- every time is parsed with its offset (``Z``, ``+02:00``, epoch seconds or milliseconds);
  a time without an offset is read as UTC and counted (``naive_times``);
- an episode (one incident on one component) holds each update's state until the next update
  and ends at the incident's resolution; a **never-resolved** episode stays open to the end of
  the history if its last update is within ``stale_open_h`` of that end, else it ends at its
  last update (counted, and said in the report: nobody closed it, it is no endless outage);
- a component's state at any moment is the **worst** state of the episodes active on it, so
  overlapping incidents never clear each other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from policies.telemetry.importers.common import RANK

__all__ = ["Episode", "parse_time", "component_events", "TimeReader"]

_H = 3_600_000


@dataclass
class TimeReader:
    """Parses times to epoch ms and counts the ones that carried no offset."""

    naive: int = 0
    unreadable: int = 0

    def __call__(self, value: object) -> int | None:
        t = parse_time(value)
        if t is None:
            self.unreadable += value not in (None, "")
            return None
        if isinstance(value, str) and not re.search(r"(Z|[+-]\d\d:?\d\d)$", value.strip()) and "T" in value:
            self.naive += 1
        return t


def parse_time(value: object) -> int | None:
    """Epoch ms of an ISO 8601 time (any offset; none = UTC) or of epoch seconds/milliseconds."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) or (isinstance(value, str) and re.fullmatch(r"\d+(\.\d+)?", value.strip())):
        x = float(value)
        return int(x if x > 1e11 else x * 1000)
    try:
        dt = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


@dataclass
class Episode:
    """One incident on one component: timed states (``points``) and when it was resolved (None: never)."""

    incident_id: str
    component: str
    points: list[tuple[int, int]] = field(default_factory=list)  # (t ms, rank)
    resolved_ms: int | None = None


def component_events(
    episodes: list[Episode], end_ms: int, stale_open_h: float
) -> tuple[dict[str, list[tuple[int, int]]], list[str]]:
    """component -> its state changes ``(t ms, rank)`` (worst active episode), and episodes closed as stale."""
    pieces: dict[str, list[tuple[int, int, int]]] = {}  # component -> (start, end, rank)
    stale: list[str] = []
    for ep in episodes:
        points = sorted(p for p in ep.points if p[0] is not None)
        if not points:
            continue
        if ep.resolved_ms is not None:
            stop = max(ep.resolved_ms, points[-1][0])
        elif end_ms - points[-1][0] <= stale_open_h * _H:
            stop = end_ms + 1  # still open at the end of the history
        else:
            stop = points[-1][0] + 1  # its last state shows in the bin of its last update, no longer
            stale.append(ep.incident_id)
        for (t, r), nxt in zip(points, [p[0] for p in points[1:]] + [stop]):
            if nxt > t:
                pieces.setdefault(ep.component, []).append((t, min(nxt, stop), r))
    out = {}
    for comp, segs in sorted(pieces.items()):
        cuts = sorted({t for s, e, _ in segs for t in (s, e)})
        events, last = [(cuts[0] - 1, RANK["up"])], RANK["up"]
        for t in cuts:
            worst = max((r for s, e, r in segs if s <= t < e), default=RANK["up"])
            if worst != last:
                events.append((t, worst))
                last = worst
        out[comp] = events
    return out, sorted(set(stale))
