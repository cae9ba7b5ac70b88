"""Import an Upptime status repository: every status change in its git history, as our tables.

Upptime commits ``history/<site>.yml`` (url, status, code, responseTime, ...) only when a
site's status changes, so the commit log is an event log. Accepted inputs: a git working
folder (``git log`` + ``git cat-file --batch`` read every version of every history file,
including sites deleted since), a git bundle file (cloned into a temporary folder first), or
a ``commits.jsonl`` export (one commit per line with ``author_time`` and ``files``). The
event time is the commit's author time (when Upptime saw the change).

Tables: services = one per history file (kind ``internal``, tier 1), health_checks = the
states carried forward and resampled (``policies.telemetry.importers.common.resample_events``, probe
``upptime``) up to the last commit, incidents = every interval a site spent ``down`` (still
open at the end: ``resolved_at`` null), severity 2.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import yaml

from policies.errors import DataValidationError, RuleViolation
from policies.schema import TABLES
from policies.telemetry.importers.common import RANK, resample_events, write_tables

__all__ = ["read_upptime_events", "import_upptime"]


def read_upptime_events(path: str | Path) -> list[tuple[int, str, dict | None]]:
    """(author time ms, site id, parsed history yml or None when deleted), oldest first."""
    p = Path(path)
    if p.is_file() and p.suffix == ".bundle":
        with tempfile.TemporaryDirectory(prefix="qres-upptime-") as tmp:
            _git(["clone", "-q", str(p), tmp + "/repo"], None)
            return _events_from_git(Path(tmp) / "repo")
    if p.is_dir() and (p / ".git").exists():
        return _events_from_git(p)
    jsonl = p / "commits.jsonl" if p.is_dir() else p
    if jsonl.is_file():
        return _events_from_jsonl(jsonl)
    raise DataValidationError(
        [RuleViolation("upptime", None, "git repository, .bundle or commits.jsonl", [str(p)], file=str(p))]
    )


def import_upptime(
    path: str | Path, out_dir: str | Path, *, resolution_min: int = 5, overlay: str | None = None
) -> dict[str, int]:
    """Write services, health_checks, incidents (+ default dependencies, workloads) to ``out_dir``."""
    events = read_upptime_events(path)
    if not events:
        raise DataValidationError(
            [RuleViolation("upptime", None, "at least one history/*.yml change", [], file=str(path))]
        )
    end_ms = max(t for t, _, _ in events)
    by_site: dict[str, list[tuple[int, int, float, int]]] = {}
    for t, site, doc in events:
        if doc is None:
            continue  # deleted: the last state carries to the end (Upptime keeps no later checks)
        status = str(doc.get("status", "up")).lower()
        code = int(doc.get("code") or 0)
        rt = doc.get("responseTime")
        latency = float(rt) if rt not in (None, 0) or status == "up" else np.nan
        by_site.setdefault(site, []).append((t, RANK.get(status, 2), latency, code))
    health, incidents = [], []
    for site, rows in sorted(by_site.items()):
        arr = np.array(rows, dtype=float)
        health.append(
            resample_events(
                site,
                "upptime",
                arr[:, 0].astype(np.int64),
                arr[:, 1].astype(np.int64),
                arr[:, 2],
                arr[:, 3].astype(np.int64),
                end_ms,
                resolution_min,
            )
        )
        incidents += _down_intervals(site, arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64))
    services = pa.Table.from_pylist(
        [{"service_id": s, "kind": "internal", "tier": 1, "capacity": 0.0, "region": None} for s in sorted(by_site)],
        schema=TABLES["services"],
    )
    return write_tables(
        Path(out_dir),
        services,
        health,
        pa.Table.from_pylist(incidents, schema=TABLES["incidents"]),
        overlay,
        partition="day",
    )


def _down_intervals(site: str, t_ms: np.ndarray, rank: np.ndarray) -> list[dict]:
    out, start = [], None
    for t, r in zip(t_ms.tolist(), rank.tolist()):
        if r == RANK["down"] and start is None:
            start = t
        elif r != RANK["down"] and start is not None:
            out.append((start, t))
            start = None
    if start is not None:
        out.append((start, None))

    def ts(ms: int | None) -> datetime | None:
        return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)

    return [
        {
            "incident_id": f"{site}-{s}",
            "started_at": ts(s),
            "resolved_at": ts(e),
            "severity": 2,
            "affected": [site],
            "summary": f"{site} down",
        }
        for s, e in out
    ]


def _git(args: list[str], cwd: Path | None, stdin: bytes | None = None) -> bytes:
    try:
        return subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        err = getattr(exc, "stderr", b"") or b""
        raise DataValidationError(
            [
                RuleViolation(
                    "upptime",
                    None,
                    "readable git repository",
                    [err.decode(errors="replace").strip()[:200] or str(exc)],
                    file=str(cwd or args[-1]),
                )
            ]
        ) from exc


def _events_from_git(repo: Path) -> list[tuple[int, str, dict | None]]:
    log = _git(["log", "--reverse", "--format=%x1e%H %at", "--name-only", "--", "history/"], repo).decode()
    wanted = []
    for block in log.split("\x1e")[1:]:
        lines = [x for x in block.strip().splitlines() if x]
        commit, at = lines[0].split()
        wanted += [(int(at) * 1000, commit, f) for f in lines[1:] if f.startswith("history/") and f.endswith(".yml")]
    spec = "".join(f"{c}:{f}\n" for _, c, f in wanted).encode()
    raw = _git(["cat-file", "--batch"], repo, spec) if wanted else b""
    out, pos = [], 0
    for t, _, f in wanted:
        end = raw.index(b"\n", pos)
        header = raw[pos:end].decode()
        pos = end + 1
        if header.endswith("missing"):
            out.append((t, Path(f).stem, None))
            continue
        size = int(header.split()[2])
        out.append((t, Path(f).stem, yaml.safe_load(raw[pos : pos + size]) or {}))
        pos += size + 1
    return out


def _events_from_jsonl(path: Path) -> list[tuple[int, str, dict | None]]:
    out = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        c = json.loads(line)
        t = int(datetime.fromisoformat(c["author_time"].replace("Z", "+00:00")).timestamp() * 1000)
        for f, content in sorted((c.get("files") or {}).items()):
            if f.startswith("history/") and f.endswith(".yml"):
                out.append((t, Path(f).stem, None if content is None else yaml.safe_load(content) or {}))
    return out
