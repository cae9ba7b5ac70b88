"""Validate only the telemetry that is new since the last validated run (the re-solve path).

Every part (file) whose table passed validation without quarantining a row is
remembered in ``<state_dir>/validated_parts.json`` by the sha256 of its bytes *and* of the
tables its rules refer to (``services``, ``sites``): a later run validates only the parts
it has not seen pass against the same references, so an incident re-run reads the whole
snapshot yet validates the new day and the incidents table, not thirty days and every
small table, while a changed ``services`` table re-validates everything that points at it.
Known parts are the very bytes that passed before, so they are only cast to the contract
schema. Trade-off, documented in docs/telemetry.md ("Incremental ingest"): table-wide rules (unique keys, freshness,
quarantine share) see the new files only; the nightly run checks everything.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import pyarrow as pa

from policies.telemetry.ingest import TablePart, Telemetry, conform_tables
from tasks.support.timeouts import with_timeout
from tasks.validate import validate_telemetry
from tasks.validation.ge_suites import PARAMETER_SOURCES
from tasks.validation.suite import ValidationReport

__all__ = ["remember_clean_parts", "validate_new_telemetry"]

_RECORD = "validated_parts.json"


def _known(state_dir: Path) -> set[str]:
    try:
        return set(json.loads((Path(state_dir) / _RECORD).read_text()))
    except (OSError, ValueError):
        return set()


def _part_key(part: TablePart, references: str) -> str:
    """A part's identity for "passed before": its bytes and the reference tables it was checked against."""
    return hashlib.sha256(f"{part.sha256}:{references}".encode()).hexdigest()


def _references(telemetry: Telemetry) -> str:
    """The sha256 of every table the suites refer to (absent tables count as absent)."""
    return ",".join(f"{t}={telemetry.sha256.get(t, '-')}" for t in sorted({t for t, _ in PARAMETER_SOURCES.values()}))


def remember_clean_parts(state_dir: Path, telemetry: Telemetry, report: ValidationReport) -> None:
    """Record the parts of every table that passed with nothing quarantined (atomic write)."""
    if not report.success:
        return
    held = {name for name, rows in report.quarantine.items() if rows.num_rows}
    refs = _references(telemetry)
    clean = {
        _part_key(p, refs)
        for name, parts in telemetry.parts.items()
        if name in report.clean and name not in held
        for p in parts
    }
    known = _known(state_dir) | clean
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=state_dir, prefix=".tmp-validated-")
    with os.fdopen(fd, "w") as fh:
        json.dump(sorted(known), fh)
    os.replace(tmp, Path(state_dir) / _RECORD)


def validate_new_telemetry(
    telemetry: Telemetry, *, state_dir: Path, timeout_s: float | None = None, **options
) -> tuple[ValidationReport, Path | None, dict[str, pa.Table], dict[str, list[tuple[str | None, pa.Table]]]]:
    """Validate the new parts (fails closed like the full check); return the conformed whole tables
    and, per table, the (sha256, table) pieces they were concatenated from, in order (None: the new
    parts' clean rows), so that per-file caches (the failure model's window grids) can be used."""
    known, refs = _known(state_dir), _references(telemetry)
    subset = {name: [p for p in parts if _part_key(p, refs) not in known] for name, parts in telemetry.parts.items()}
    subset = {name: parts for name, parts in subset.items() if parts}
    # Known reference tables (services, sites) are not checked again; they only supply the ids.
    references = Telemetry(
        telemetry.source,
        {t: telemetry.parts[t] for t, _ in PARAMETER_SOURCES.values() if t in telemetry.parts and t not in subset},
        telemetry.sha256,
    )
    report, docs = with_timeout(validate_telemetry, timeout_s)(
        Telemetry(telemetry.source, subset, telemetry.sha256), state_dir=state_dir, references=references, **options
    )
    tables, pieces = {}, {}
    for name, parts in telemetry.parts.items():
        checked = {p.sha256 for p in subset.get(name, [])}
        pieces[name] = [(p.sha256, conform_tables({name: p.table})[name]) for p in parts if p.sha256 not in checked]
        if name in report.clean:
            pieces[name].append((None, conform_tables({name: report.clean[name]})[name]))
        chunks = [t for _, t in pieces[name]]
        tables[name] = pa.concat_tables(chunks) if len(chunks) > 1 else chunks[0]
    remember_clean_parts(state_dir, Telemetry(telemetry.source, subset, telemetry.sha256), report)
    return report, docs, tables, pieces
