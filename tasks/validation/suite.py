"""Validate telemetry tables: the pyarrow schema first, then the Great Expectations suites.

The schema step (``policies.schema``) makes sure every column is present, castable and
non-null where required, so that GE only ever sees well-typed frames. The semantic rules
(ranges, allowed values, uniqueness, references between tables) live as GE-native JSON in
``data/expectations/<suite>.json``, one suite per table. GE has no list-element
expectations, so each list column (``incidents.affected``, ``workloads.requires``,
``workloads.risks``) is exploded into a derived frame with its own small suite
(``workloads.requires.json``); its results are reported under the parent table and list
column. References to other tables are suite parameters (``{"$PARAMETER": "service_ids"}``)
filled at run time from the ``services`` and ``sites`` tables given. The suites run once
per batch of files (``tasks.validation.frames``); rules over a whole table that GE cannot see
per batch are in ``tasks.validation.table``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from policies.errors import DataValidationError, RuleViolation
from policies.telemetry.mapped import release_pages
from tasks.validation.frames import BATCH_ROWS, batch_safe, frames_for, plan_batches, split_results
from tasks.validation.ge_suites import (
    NOW_PARAMETER,
    PARAMETER_SOURCES,
    SuiteRunner,
    new_context,
    suite_expectations,
)
from tasks.validation.rules import (
    merge_results,
    result,
)
from tasks.validation.schema import CAST_ERRORS, check_schema, finite_row_failures
from tasks.validation.table import table_rules

__all__ = [
    "TableReport",
    "ValidationReport",
    "validate_tables",
    "validate_parts",
]

_REFERENCE_FIRST = ("services", "sites")


@dataclass(frozen=True)
class TableReport:
    """Every check run on one table: schema, its suite and its list-column suites."""

    table: str
    rows: int
    success: bool
    results: list[dict]  # suite, rule, column, success, unexpected_count, examples, level, quarantined, file
    quarantined: int = 0


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of one validation: per-table results, every broken rule, clean tables and quarantine."""

    success: bool
    tables: dict[str, TableReport]
    rows_validated: int
    violations: list[RuleViolation]
    clean: dict[str, pa.Table] = field(default_factory=dict, repr=False)  # typed, quarantined rows removed
    quarantine: dict[str, pa.Table] = field(default_factory=dict, repr=False)  # bad rows + "_rule", "_file"
    max_share: float = 0.0

    def as_dict(self) -> dict:
        """JSON-ready (for an MLflow artifact)."""
        return {
            "success": self.success,
            "rows_validated": self.rows_validated,
            "quarantine_max_share": self.max_share,
            "quarantined": {n: t.num_rows for n, t in self.quarantine.items()},
            "tables": {
                n: {
                    "table": t.table,
                    "rows": t.rows,
                    "success": t.success,
                    "quarantined": t.quarantined,
                    "results": t.results,
                }
                for n, t in self.tables.items()
            },
            "violations": [v.as_dict() for v in self.violations],
        }


def validate_tables(
    tables: Mapping[str, pa.Table], *, files: Mapping[str, str] | None = None, raise_on_failure: bool = True, **options
) -> ValidationReport:
    """Check whole tables (one part each); see :func:`validate_parts` for ``options``."""
    files = dict(files or {})
    return validate_parts(
        {n: [(files.get(n), t)] for n, t in tables.items()}, raise_on_failure=raise_on_failure, **options
    )


def validate_parts(
    parts: Mapping[str, Sequence[tuple[str | None, pa.Table]]],
    *,
    raise_on_failure: bool = True,
    quarantine_max_share: float | Mapping[str, float] = 0.0,
    now: datetime | None = None,
    freshness_max_age_min: float | None = None,
    batch_rows: int = BATCH_ROWS,
    references: Mapping[str, Sequence[tuple[str | None, pa.Table]]] | None = None,
) -> ValidationReport:
    """Check every table, file by file, against its schema and suites; quarantine bad rows.

    ``parts`` maps a table to its (file, table) parts: the schema step runs per part, the GE
    suites once per batch of consecutive parts of up to ``batch_rows`` rows
    (``tasks.validation.frames``; 0 = per part), so memory stays flat and messages name the
    file. Rows breaking a row-level rule are set aside; the table passes while they are at
    most ``quarantine_max_share`` of its rows (a float, or one per table), else every such
    rule is a violation. Table-level rules (schema, uniqueness, row counts, series order,
    freshness) never quarantine: they fail closed. References to ``services``/``sites`` fail
    closed when those tables are absent or unreadable. ``references`` supplies those tables
    (parts as in ``parts``) when they passed before and only their ids are needed.
    """
    now = now or datetime.now(UTC)
    shares = quarantine_max_share if isinstance(quarantine_max_share, Mapping) else {}
    default_share = 0.0 if isinstance(quarantine_max_share, Mapping) else float(quarantine_max_share)
    context = new_context()
    runner = SuiteRunner(context, context.data_sources.add_pandas("telemetry"))
    params: dict[str, object] = {NOW_PARAMETER: pd.Timestamp(now).tz_convert("UTC").tz_localize(None)}
    params |= _reference_values({**(references or {}), **parts})
    reports, violations, clean, quarantine = {}, [], {}, {}
    order = [n for n in _REFERENCE_FIRST if n in parts] + [n for n in parts if n not in _REFERENCE_FIRST]
    for name in order:
        rows = sum(t.num_rows for _, t in parts[name])
        results, typed_parts, good, bad = [], [], [], []
        for file, raw in parts[name]:
            typed, res = check_schema(name, raw, file)
            results += res
            if typed is not None:
                typed_parts.append((file, typed))
        limit = batch_rows if batch_safe(suite_expectations(name)) else 0
        for batch in plan_batches([t.num_rows for _, t in typed_parts], limit):
            chunk = [typed_parts[i] for i in batch]
            for (file, typed), (part_results, mask) in zip(chunk, _check_rows(runner, name, chunk, params)):
                results += part_results
                good.append((file, typed.filter(pa.array(~mask)) if mask.any() else typed))
                if mask.any():
                    bad.append(_quarantine_rows(typed, mask, part_results, file))
            release_pages()  # mapped day files: only the batch being checked stays resident
        typed_parts.clear()
        results = merge_results(results)
        # Row-level schema rules (finite numbers) quarantine like any row rule: only table-level
        # schema breaks (missing column, bad type, unreadable file) withhold the clean table.
        schema_ok = all(r["success"] for r in results if r["suite"] == "schema" and r["level"] != "row")
        if schema_ok and good:
            clean[name] = pa.concat_tables([g for _, g in good])
            results += table_rules(name, clean[name], [(f, g.num_rows) for f, g in good], now, freshness_max_age_min)
        n_bad = sum(t.num_rows for t in bad)
        share = shares.get(name, default_share)
        over = n_bad > share * rows
        for r in results:
            if r["level"] == "row" and not r["success"]:
                r["quarantined"] = 0 if over else (r["unexpected_count"] or 0)
        broken = [
            RuleViolation(name, r["column"], r["rule"], r["examples"], r["unexpected_count"], r.get("file"))
            for r in results
            if not r["success"] and (r["level"] != "row" or over)
        ]
        if bad and not over:
            quarantine[name] = pa.concat_tables(bad)
        _refresh_parameters(params, name, clean.get(name) if not broken else None)
        reports[name] = TableReport(name, rows, not broken, results, n_bad if not over else 0)
        violations += broken
    report = ValidationReport(
        not violations,
        reports,
        sum(r.rows for r in reports.values()),
        violations,
        clean if not violations else {},
        quarantine,
        default_share,
    )
    if violations and raise_on_failure:
        over = [
            n
            for n, t in reports.items()
            if any(r["level"] == "row" and not r["success"] for r in t.results) and not t.success
        ]
        hint = None
        if over:
            hint = (
                f"Rows breaking row-level rules exceed the quarantine share ({default_share:.2%} of a table's rows) "
                f"in {', '.join(over)}. Fix the input files (they were not changed) and run again; "
                "the last published bundle stays LATEST."
            )
        raise DataValidationError(violations, hint=hint)
    return report


# --- row-level checks on a batch of parts ---------------------------------------------------


def _check_rows(runner: SuiteRunner, name: str, chunk: list[tuple[str | None, pa.Table]], params: dict):
    """Finite numbers (pyarrow) per part and the GE suites once on the batch: (results, bad-row mask) per part."""
    sizes = [t.num_rows for _, t in chunk]
    batch = chunk[0][1] if len(chunk) == 1 else pa.concat_tables([t for _, t in chunk])
    checked = []
    for frame_name, frame in frames_for(name, batch).items():
        checked += runner.run(frame_name, frame, params)
    out = []
    for (file, typed), ge_results in zip(chunk, split_results(checked, sizes, [f for f, _ in chunk])):
        mask = np.zeros(typed.num_rows, dtype=bool)
        results = []
        for (rule, column), (rows, examples) in finite_row_failures(typed).items():
            results.append(result("schema", f"schema: {rule}", column, False, int(rows.sum()), examples, "row", file))
            results[-1]["_mask"] = rows
        for r in results + ge_results:
            if "_mask" in r:
                mask |= r["_mask"]
        out.append((results + ge_results, mask))
    return out


def _quarantine_rows(typed: pa.Table, mask: np.ndarray, results: list[dict], file: str | None) -> pa.Table:
    """The bad rows of a part, each with the first rule it broke and its file."""
    idx = np.flatnonzero(mask)
    rule = np.full(idx.size, "", dtype=object)
    for r in results:
        rows = r.pop("_mask", None)
        if rows is not None:
            hit = rows[idx] & (rule == "")
            rule[hit] = r["rule"]
    bad = typed.take(pa.array(idx))
    return bad.append_column("_rule", pa.array(rule.tolist(), pa.string())).append_column(
        "_file", pa.array([file or ""] * idx.size, pa.string())
    )


def _reference_values(parts: Mapping[str, Sequence[tuple[str | None, pa.Table]]]) -> dict[str, list[str]]:
    """Values of the suite parameters, read from the raw tables they refer to (when readable)."""
    params = {}
    for param, (source, column) in PARAMETER_SOURCES.items():
        try:
            values = [pc.unique(pc.cast(t[column], pa.string())) for _, t in parts.get(source, ())]
        except (KeyError, *CAST_ERRORS):
            continue  # unreadable: the schema step reports it, the references fail closed
        if values:
            params[param] = sorted(set(pa.chunked_array(values, pa.string()).drop_null().to_pylist()))
    return params


def _refresh_parameters(params: dict, name: str, table: pa.Table | None) -> None:
    for param, (source, column) in PARAMETER_SOURCES.items():
        if source == name and table is not None:
            params[param] = sorted(pc.unique(table[column]).drop_null().to_pylist())
