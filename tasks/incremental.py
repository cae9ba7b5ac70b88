"""Validate only the telemetry that is new since the last validated run (the re-solve path).

Every part (file) whose table passed validation without quarantining a row is
remembered by its sha256 in ``<state_dir>/validated_parts.json``. A later run re-checks
the small single-file tables in full (cheap, and it keeps referential rules whole) but,
in tables split over many files (health checks by day), only the files it has not seen
pass: an incident re-run reads the whole snapshot yet validates one new day, not thirty.
Known parts are the very bytes that passed before (same sha256), so they are only cast to
the contract schema. Trade-off, documented in the README: table-wide rules (unique keys,
freshness, quarantine share) see the new files only; the nightly run checks everything.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pyarrow as pa

from policies.ingest import Telemetry, conform_tables
from tasks.validate import validate_telemetry
from tasks.validation import ValidationReport

__all__ = ["remember_clean_parts", "validate_new_telemetry"]

_RECORD = "validated_parts.json"


def _known(state_dir: Path) -> set[str]:
    try:
        return set(json.loads((Path(state_dir) / _RECORD).read_text()))
    except (OSError, ValueError):
        return set()


def remember_clean_parts(state_dir: Path, telemetry: Telemetry, report: ValidationReport) -> None:
    """Record the parts of every table that passed with nothing quarantined (atomic write)."""
    if not report.success:
        return
    held = {name for name, rows in report.quarantine.items() if rows.num_rows}
    clean = {p.sha256 for name, parts in telemetry.parts.items() if name in report.clean and name not in held
             for p in parts}
    known = _known(state_dir) | clean
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=state_dir, prefix=".tmp-validated-")
    with os.fdopen(fd, "w") as fh:
        json.dump(sorted(known), fh)
    os.replace(tmp, Path(state_dir) / _RECORD)


def validate_new_telemetry(telemetry: Telemetry, *, state_dir: Path, **options) -> tuple[
        ValidationReport, Path | None, dict[str, pa.Table]]:
    """Validate the new parts (fails closed like the full check); return the conformed whole tables."""
    known = _known(state_dir)
    subset = {name: parts if len(parts) == 1 else [p for p in parts if p.sha256 not in known]
              for name, parts in telemetry.parts.items()}
    subset = {name: parts for name, parts in subset.items() if parts}
    report, docs = validate_telemetry(Telemetry(telemetry.source, subset, telemetry.sha256), state_dir=state_dir,
                                      **options)
    tables = {}
    for name, parts in telemetry.parts.items():
        checked = {p.sha256 for p in subset.get(name, [])}
        reused = [conform_tables({name: p.table})[name] for p in parts if p.sha256 not in checked]
        fresh = [conform_tables({name: report.clean[name]})[name]] if name in report.clean else []
        tables[name] = pa.concat_tables(reused + fresh) if len(reused) + len(fresh) > 1 else (reused + fresh)[0]
    remember_clean_parts(state_dir, Telemetry(telemetry.source, subset, telemetry.sha256), report)
    return report, docs, tables
