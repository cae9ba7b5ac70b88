"""Import an Upptime status repository as it really is: sites come, go, get renamed, start from a template.

Upptime commits ``history/<site>.yml`` (status, code, responseTime, lastUpdated) when a
site's status changes (and about once a day regardless), and the site list lives in
``.upptimerc.yml``. The commits (:mod:`policies.telemetry.importers.upptime_git`) are an event
log. Rules (docs/importers.md):

- A site **exists** from its first check until the earliest of: it is removed from the site
  list, its history file is deleted, or it is not checked for ``stale_after_h`` hours (then it
  ends at its last check). A later check (re-added, file re-created) opens a new span. Outside
  its spans a site is absent: no health checks are written, it is not down.
- **Template placeholders** (sites of the Upptime template such as Google, Wikipedia, Hacker
  News, a broken test site, in the first site list and removed later) are dropped unless
  ``keep_template_sites``.
- **Renamed** sites (one site leaves the list and one with the same URL joins in the same
  commit) continue under the new name.
- **Maintenance commits** that rewrite a history file without a new check (same
  ``lastUpdated`` and status) are not checks; checks of a site no longer listed are ignored.
- A span that ends in a **down run longer than** ``retired_after_h`` (a site down until the
  data ends, or until removed) is cut where that run starts: "probably retired or
  misconfigured", reported, not modelled as an outage.

Tables: services (kind ``internal``, tier 1), health_checks (carried forward and resampled
inside spans, probe ``upptime``), incidents (each down run; open at the end of the data:
``resolved_at`` null; cut by the end of a span: resolved at that end), severity 2.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pyarrow as pa
import yaml

from policies.errors import DataValidationError, RuleViolation
from policies.schema import TABLES
from policies.telemetry.importers.common import RANK, down_intervals, resample_events, write_tables
from policies.telemetry.importers.report import SUMMARY_FILE, ImportReport, SiteReport, Span, iso
from policies.telemetry.importers.upptime_git import CONFIG_FILE, Commit, is_history_file, read_upptime_commits

__all__ = ["import_upptime", "plan_upptime", "upptime_slug", "TEMPLATE_SITES"]

# Placeholder sites of the upptime/upptime template's .upptimerc.yml over the years (slugs).
TEMPLATE_SITES = frozenset(
    {"google", "wikipedia", "hacker-news", "test-broken-site", "broken-site", "secret-site", "test-for-head"}
    | {"tcp-ping", "i-pv6-test", "ipv6-test", "example", "example-site"}
)
_TEMPLATE_HOSTS = ("google.com", "wikipedia.org", "ycombinator.com", "koj.co", "forwardemail.net", "example.com")
_H = 3_600_000
Check = tuple[int, int, float, int]  # (t ms, rank, latency ms, http code)
_SKIPPED = {"rewrites": "rewrites without a new check (maintenance commits)", "unlisted": "checks after removal"}


def upptime_slug(name: str) -> str:
    """The history file name Upptime derives from a site name (@sindresorhus/slugify's decamelize)."""
    s = re.sub(r"([A-Z]{2,})(\d+)", r"\1 \2", name)
    s = re.sub(r"([a-z\d]+)([A-Z]{2,})", r"\1 \2", s)
    s = re.sub(r"([a-z\d])([A-Z])", r"\1 \2", s)
    s = re.sub(r"([A-Z]+)([A-Z][a-rt-z\d]+)", r"\1 \2", s)
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-") or "site"


def _site_list(text: str | None) -> dict[str, str] | None:
    """slug -> url of a .upptimerc.yml version (None when unreadable or without sites)."""
    try:
        doc = yaml.safe_load(text or "") or {}
    except yaml.YAMLError:
        return None
    sites = doc.get("sites") if isinstance(doc, dict) else None
    if not isinstance(sites, list):
        return None
    out = {}
    for s in sites:
        if isinstance(s, dict) and s.get("name"):
            out[str(s.get("slug") or upptime_slug(str(s["name"])))] = str(s.get("url") or "")
    return out


def _is_template(slug: str, url: str) -> bool:
    host = (urlparse(url if "://" in url else "//" + url).hostname or "").lower()
    return slug in TEMPLATE_SITES or any(host == h or host.endswith("." + h) for h in _TEMPLATE_HOSTS)


class _Timeline:
    """The commits split into site-list versions and per-file events."""

    def __init__(self, commits: list[Commit]) -> None:
        self.configs: list[tuple[int, dict[str, str]]] = []
        self.events: dict[str, list[tuple[int, str, dict | None]]] = {}
        for c in commits:
            if CONFIG_FILE in c.files:
                sites = _site_list(c.files[CONFIG_FILE])
                if sites is not None and (not self.configs or sites != self.configs[-1][1]):
                    self.configs.append((c.t_ms, sites))
            for f, text in c.files.items():
                if is_history_file(f):
                    slug = f[len("history/") : -len(".yml")]
                    doc = None if text is None else _yaml_doc(text)
                    self.events.setdefault(slug, []).append((c.t_ms, "delete" if text is None else "write", doc))
        self.end_ms = max((c.t_ms for c in commits), default=0)
        self.renames = self._renames()

    def _renames(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for (_, old), (_, new) in zip(self.configs, self.configs[1:]):
            added = {s: u for s, u in new.items() if s not in old}
            for slug in (s for s in old if s not in new):
                same = [a for a, u in added.items() if u and u == old[slug]]
                if len(same) == 1:
                    out[slug] = same[0]
        return out

    def final_name(self, slug: str) -> str:
        seen = {slug}
        while slug in self.renames and self.renames[slug] not in seen:
            slug = self.renames[slug]
            seen.add(slug)
        return slug

    def unlisted(self, slug: str, t_ms: int) -> bool:
        """Whether ``slug`` was in an earlier site list but is not in the one at ``t_ms`` (removed).

        A site that no site list ever named (the list kept elsewhere) is never "unlisted".
        """
        earlier = [sites for t, sites in self.configs if t <= t_ms]
        return bool(earlier) and slug not in earlier[-1] and any(slug in c for c in earlier)

    def removals(self, slug: str) -> list[int]:
        return [t for (_, a), (t, b) in zip(self.configs, self.configs[1:]) if slug in a and slug not in b]


def _yaml_doc(text: str) -> dict:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _check(t: int, doc: dict) -> Check:
    status = str(doc.get("status", "up")).lower()
    rt = doc.get("responseTime")
    latency = float(rt) if isinstance(rt, (int, float)) and (rt or status == "up") else np.nan
    code = doc.get("code")
    return (t, RANK.get(status, RANK["down"]), latency, int(code) if isinstance(code, int) else 0)


def _site_spans(
    tl: _Timeline, slug: str, stale_ms: int, retired_ms: int
) -> tuple[list[tuple[Span, list[Check]]], dict]:
    """Spans of one history file with their checks, and counts of what was skipped."""
    skipped = {"rewrites": 0, "unlisted": 0}
    marks = [(t, 0, "removed", None) for t in tl.removals(slug)]
    marks += [(t, 1, kind, doc) for t, kind, doc in tl.events.get(slug, [])]
    spans: list[tuple[Span, list[Check]]] = []
    cur: list[Check] = []
    last_doc: dict | None = None

    def close(end: int, why: str) -> None:
        nonlocal cur
        if cur:
            spans.append((Span(cur[0][0], max(end, cur[-1][0]), why), cur))
        cur = []

    for t, _, kind, doc in sorted(marks, key=lambda m: (m[0], m[1])):
        if kind == "removed":
            close(t, "removed from the site list")
        elif kind == "delete":
            close(t, "history file deleted")
            last_doc = None
        elif tl.unlisted(slug, t):
            skipped["unlisted"] += 1
        elif last_doc is not None and cur and _same_check(doc, last_doc):
            skipped["rewrites"] += 1
        else:
            if cur and t - cur[-1][0] > stale_ms:
                close(cur[-1][0], f"not checked for {(t - cur[-1][0]) / _H / 24:.1f} days")
            cur.append(_check(t, doc or {}))
            last_doc = doc
    if cur:
        quiet = tl.end_ms - cur[-1][0]
        close(tl.end_ms, "end of data") if quiet <= stale_ms else close(cur[-1][0], "no later check")
    return [_cut_retired(span, checks, retired_ms, tl.end_ms) for span, checks in spans], skipped


def _same_check(doc: dict | None, prev: dict) -> bool:
    keys = ("lastUpdated", "status")
    return doc is not None and doc.get("lastUpdated") is not None and all(doc.get(k) == prev.get(k) for k in keys)


def _cut_retired(span: Span, checks: list[Check], retired_ms: int, end_ms: int) -> tuple[Span, list[Check]]:
    """A span ending in a down run longer than ``retired_ms`` ends where that run starts."""
    i = len(checks)
    while i > 0 and checks[i - 1][1] == RANK["down"]:
        i -= 1
    if i == len(checks) or span.end_ms - checks[i][0] <= retired_ms:
        return span, checks
    since = checks[i][0]
    until = "the data ends" if span.end_ms == end_ms else f"{span.ended_by} ({iso(span.end_ms)[:10]})"
    why = (
        f"down from {iso(since)[:16]} until {until} ({(span.end_ms - since) / _H / 24:.1f} days): "
        "probably retired or misconfigured, not modelled as an outage"
    )
    return (Span(span.start_ms, since, why), checks[:i]) if i else (Span(since, since, why), [])


def plan_upptime(
    commits: list[Commit], *, keep_template_sites: bool = False, stale_after_h: float = 72, retired_after_h: float = 168
) -> tuple[dict[str, list[tuple[Span, list[Check]]]], ImportReport]:
    """service id -> its spans with checks, and the report (rows not yet filled in)."""
    tl = _Timeline(commits)
    first = tl.configs[0][1] if tl.configs else {}
    plan: dict[str, list[tuple[Span, list[Check]]]] = {}
    sites: list[SiteReport] = []
    for slug in sorted(tl.events):
        spans, skipped = _site_spans(tl, slug, int(stale_after_h * _H), int(retired_after_h * _H))
        seen = sum(kind == "write" for _, kind, _ in tl.events[slug])
        url = next((str(d.get("url", "")) for _, _, d in tl.events[slug] if d), "")
        rep = SiteReport(slug, None, "", [s for s, _ in spans], seen)
        rep.notes += [f"{n} {_SKIPPED[k]} ignored" for k, n in skipped.items() if n]
        if tl.configs and not any(slug in c for _, c in tl.configs):
            rep.notes.append("never named in .upptimerc.yml (site list kept elsewhere?): its checks define its span")
        removed_later = slug in first and any(slug not in c for _, c in tl.configs[1:])
        no_config_gone = not tl.configs and all(s.ended_by != "end of data" for s in rep.spans)
        if _is_template(slug, url) and (removed_later or no_config_gone) and not keep_template_sites:
            rep.reason = "Upptime template placeholder (in the first site list, removed later; --keep-template-sites)"
        elif not any(c for _, c in spans):
            rep.reason = "no usable check" + (f": {rep.spans[0].ended_by}" if rep.spans else "")
        else:
            rep.service_id = tl.final_name(slug)
            rep.reason = "renamed to " + rep.service_id if rep.service_id != slug else "checked"
            plan.setdefault(rep.service_id, []).extend((s, c) for s, c in spans if c)
        sites.append(rep)
    start = min((s.start_ms for r in sites if r.kept for s in r.spans), default=None)
    report = ImportReport("", "upptime", start, tl.end_ms or None, sites)
    return {k: sorted(v, key=lambda sc: sc[0].start_ms) for k, v in sorted(plan.items())}, report


def import_upptime(
    path: str | Path,
    out_dir: str | Path,
    *,
    resolution_min: int = 5,
    overlay: str | None = None,
    keep_template_sites: bool = False,
    stale_after_h: float = 72,
    retired_after_h: float = 168,
) -> ImportReport:
    """Write services, health_checks, incidents (+ defaults) and ``_import_summary.json`` to ``out_dir``."""
    commits = read_upptime_commits(path)
    plan, report = plan_upptime(
        commits, keep_template_sites=keep_template_sites, stale_after_h=stale_after_h, retired_after_h=retired_after_h
    )
    report.source = str(path)
    if not plan:
        raise DataValidationError(
            [RuleViolation("upptime", None, "at least one site with checks", [s.site for s in report.sites][:5])],
            hint="Every site was dropped: " + "; ".join(f"{s.site}: {s.reason}" for s in report.sites[:5]),
        )
    health, incidents, per_service = [], [], {}
    step = resolution_min * 60_000
    for service, spans in plan.items():
        rows, downs, floor = 0, 0, None
        for span, checks in spans:
            arr = np.array(checks, dtype=float)
            t = arr[:, 0].astype(np.int64)
            if floor is not None:  # a renamed site's spans may touch: keep the grid strictly increasing
                t = np.maximum(t, floor + step)
            table = resample_events(
                service, "upptime", t, arr[:, 1].astype(np.int64), arr[:, 2], arr[:, 3].astype(np.int64),
                max(span.end_ms - 1, int(t.max())), resolution_min,
            )  # fmt: skip
            health.append(table)
            rows += table.num_rows
            floor = int(table["ts"][-1].value)
            open_end = None if span.ended_by == "end of data" else span.end_ms
            found = down_intervals(service, t, arr[:, 1].astype(np.int64), open_end)
            incidents += found
            downs += len(found)
        per_service[service] = (rows, downs)
    for rep in report.kept:
        rep.health_checks, rep.down_events = per_service.get(rep.service_id, (0, 0))
        per_service[rep.service_id] = (0, 0)  # a renamed service's counts go to its first site only
    services = pa.Table.from_pylist(
        [{"service_id": s, "kind": "internal", "tier": 1, "capacity": 0.0, "region": None} for s in plan],
        schema=TABLES["services"],
    )
    report.rows = write_tables(
        Path(out_dir), services, health, pa.Table.from_pylist(incidents, schema=TABLES["incidents"]), overlay
    )
    (Path(out_dir) / SUMMARY_FILE).write_text(report.to_json())
    return report
