"""Validate telemetry tables: the pyarrow schema first, then the Great Expectations suites.

The schema step (``policies.schema``) makes sure every column is present, castable and
non-null where required, so that GE only ever sees well-typed frames. The semantic rules
(ranges, allowed values, uniqueness, references between tables) live as GE-native JSON in
``data/expectations/<suite>.json``, one suite per table. GE has no list-element
expectations, so each list column (``incidents.affected``, ``workloads.requires``,
``workloads.risks``) is exploded into a derived frame with its own small suite
(``workloads.requires.json``); its results are reported under the parent table and list
column. References to other tables are suite parameters (``{"$PARAMETER": "service_ids"}``)
filled at run time from the ``services`` and ``sites`` tables given.
"""

from __future__ import annotations

import os

# GE 1.24 ships no analytics sender any more; the context config below switches analytics off
# explicitly, and this variable (the name GE documents) covers any other context it builds.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

import json  # noqa: E402
import math  # noqa: E402
from collections.abc import Mapping  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import great_expectations as gx  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
from great_expectations.data_context.types.base import (  # noqa: E402
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)

from policies.errors import DataValidationError, RuleViolation  # noqa: E402
from policies.schema import TABLES  # noqa: E402

__all__ = ["SUITES_DIR", "PARAMETER_SOURCES", "TableReport", "ValidationReport", "load_suite_dict", "validate_tables"]

SUITES_DIR = Path(__file__).resolve().parents[1] / "data" / "expectations"

# Suite parameter -> the (table, column) whose values it takes at run time.
PARAMETER_SOURCES = {"service_ids": ("services", "service_id"), "site_ids": ("sites", "site_id")}

# SUMMARY gives unexpected_count and a partial list; 20 leaves room to de-duplicate down to 5.
_RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 20}
_MAX_EXAMPLES = 5
_CAST_PROBES = 2000  # distinct values cast one by one to find examples of an uncastable column
_CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)


@dataclass(frozen=True)
class TableReport:
    """Every check run on one table: schema, its suite and its list-column suites."""

    table: str
    rows: int
    success: bool
    results: list[dict]  # suite, rule, column, success, unexpected_count, examples


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of one validation: per-table results and every broken rule."""

    success: bool
    tables: dict[str, TableReport]
    rows_validated: int
    violations: list[RuleViolation]

    def as_dict(self) -> dict:
        """JSON-ready (for an MLflow artifact)."""
        return {
            "success": self.success,
            "rows_validated": self.rows_validated,
            "tables": {n: {"table": t.table, "rows": t.rows, "success": t.success, "results": t.results}
                       for n, t in self.tables.items()},
            "violations": [v.as_dict() for v in self.violations],
        }


def validate_tables(tables: Mapping[str, pa.Table], *, files: Mapping[str, str] | None = None,
                    raise_on_failure: bool = True) -> ValidationReport:
    """Check every given table against its schema and suites; raise DataValidationError on a break.

    ``files`` maps a table name to the file or folder it was read from, so messages name it.
    A table whose references cannot be checked (``services`` or ``sites`` absent) fails closed.
    """
    files = dict(files or {})
    params = _reference_values(tables)
    context = _new_context()
    source = context.data_sources.add_pandas("telemetry")
    reports: dict[str, TableReport] = {}
    violations: list[RuleViolation] = []
    for name, raw in tables.items():
        typed, results = _check_schema(name, raw)
        if typed is not None:
            for frame_name, frame in _frames_for(name, typed).items():
                results += _run_suite(context, source, frame_name, frame, params)
        broken = [RuleViolation(name, r["column"], r["rule"], r["examples"], r["unexpected_count"], files.get(name))
                  for r in results if not r["success"]]
        reports[name] = TableReport(name, raw.num_rows, not broken, results)
        violations += broken
    report = ValidationReport(not violations, reports, sum(r.rows for r in reports.values()), violations)
    if violations and raise_on_failure:
        raise DataValidationError(violations)
    return report


def load_suite_dict(suite_name: str) -> dict:
    """The GE-native suite JSON of a table or a derived frame (``workloads.requires``)."""
    path = SUITES_DIR / f"{suite_name}.json"
    if not path.exists():
        raise FileNotFoundError(f"no expectation suite for {suite_name!r}: add {path}")
    return json.loads(path.read_text())


# --- schema (pyarrow) -------------------------------------------------------------------


def _check_schema(name: str, table: pa.Table) -> tuple[pa.Table | None, list[dict]]:
    """Cast ``table`` to its contract: the cast table (None if anything broke) and the results."""
    if name not in TABLES:
        return None, [_result("schema", f"schema: unknown table (known: {', '.join(TABLES)})", None, False)]
    schema = TABLES[name]
    present = set(table.column_names)
    broken = [_result("schema", "schema: missing column", c, False) for c in schema.names if c not in present]
    broken += [_result("schema", "schema: unexpected column", c, False, None, _jsonable(table[c][:5].to_pylist()))
               for c in table.column_names if c not in schema.names]
    columns = []
    for field in schema:
        if field.name not in table.column_names:
            continue
        column = table[field.name]
        try:
            # The same safe cast as policies.ingest.conform_tables: what passes here conforms there.
            column = pc.cast(column, field.type)
        except _CAST_ERRORS:
            rule = f"schema: type {column.type} not castable to {field.type}"
            broken.append(_result("schema", rule, field.name, False, None, _uncastable_values(column, field.type)))
            continue
        if not field.nullable and column.null_count:
            rows = pc.indices_nonzero(pc.is_null(column).combine_chunks())[:_MAX_EXAMPLES].to_pylist()
            rule = "schema: null in non-nullable column"
            broken.append(_result("schema", rule, field.name, False, column.null_count, [f"row {i}" for i in rows]))
        columns.append(column)
    if broken:
        return None, broken
    ok = _result("schema", "schema: columns, types and nulls match", None, True, 0)
    return pa.Table.from_arrays(columns, schema=schema), [ok]


def _uncastable_values(column: pa.ChunkedArray, target: pa.DataType) -> list[object]:
    """A few values that do not cast (the first values when the types cannot cast at all)."""
    try:
        candidates = pc.unique(column)
    except _CAST_ERRORS:
        candidates = column.combine_chunks()
    found: list[object] = []
    for i in range(min(len(candidates), _CAST_PROBES)):
        try:
            pc.cast(candidates[i : i + 1], target)
        except _CAST_ERRORS:
            found.append(_jsonable(candidates[i].as_py()))
            if len(found) == _MAX_EXAMPLES:
                break
    return found


# --- frames for GE ----------------------------------------------------------------------


def _frames_for(name: str, table: pa.Table) -> dict[str, pd.DataFrame]:
    """The table's own frame (without list columns) plus one exploded frame per list column."""
    lists = [f for f in table.schema if pa.types.is_list(f.type)]
    frames = {name: _to_pandas(table.drop_columns([f.name for f in lists]))}
    key = table.column_names[0]
    for field in lists:
        column = table[field.name].combine_chunks()
        values = pc.list_flatten(column)
        derived = {key: pc.take(table[key], pc.list_parent_indices(column))}
        if pa.types.is_struct(values.type):  # workloads.risks -> risks.depends_on, risks.cost_per_hour
            derived |= {f"{field.name}.{sub.name}": pc.struct_field(values, [i]) for i, sub in enumerate(values.type)}
        else:
            derived[field.name] = values
        frames[f"{name}.{field.name}"] = _to_pandas(pa.table(derived))
    return frames


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    """The frame GE sees: strings as categoricals, timestamps as naive UTC.

    Categoricals were measured fastest for GE 1.24 (pandas 3's default ``str`` is ~1.4x and
    ``ArrowDtype`` ~10x slower). Timestamps are UTC by contract; GE reads tz-aware columns
    through ``Series.values``, which pandas 3.1 deprecates with a warning per expectation.
    """
    for i, field in enumerate(table.schema):
        if pa.types.is_string(field.type):
            table = table.set_column(i, field.name, pc.dictionary_encode(table[i]))
        elif pa.types.is_timestamp(field.type) and field.type.tz is not None:
            table = table.set_column(i, field.name, pc.cast(table[i], pa.timestamp(field.type.unit)))
    return table.to_pandas()


def _reference_values(tables: Mapping[str, pa.Table]) -> dict[str, list[str]]:
    """Values of the suite parameters, read from the tables they refer to (when readable)."""
    params = {}
    for param, (source, column) in PARAMETER_SOURCES.items():
        table = tables.get(source)
        if table is not None and column in table.column_names:
            try:
                params[param] = sorted(pc.unique(pc.cast(table[column], pa.string())).drop_null().to_pylist())
            except _CAST_ERRORS:
                pass  # unreadable: the schema step reports it, the references fail closed
    return params


# --- GE ---------------------------------------------------------------------------------


def _new_context():
    """An in-memory context with analytics and progress bars off (a few ms to build)."""
    config = DataContextConfig(analytics_enabled=False, store_backend_defaults=InMemoryStoreBackendDefaults(),
                               progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False))
    return gx.get_context(mode="ephemeral", project_config=config)


def _run_suite(context, source, frame_name: str, frame: pd.DataFrame, params: dict) -> list[dict]:
    """Run one suite on one frame through a ValidationDefinition; one result per expectation."""
    spec = load_suite_dict(frame_name)
    runnable, results = [], []
    for exp in spec["expectations"]:
        missing = _parameters(exp["kwargs"]) - params.keys()
        if missing:  # a reference that cannot be checked fails closed rather than passing unchecked
            needs = ", ".join(sorted(PARAMETER_SOURCES[p][0] for p in missing))
            rule = f"{_describe(exp)}: needs table(s) {needs}, absent or unreadable"
            results.append(_result(frame_name, rule, _column_of(exp["kwargs"]), False))
        else:
            runnable.append(exp)
    suite = context.suites.add(gx.ExpectationSuite(**{**spec, "expectations": runnable}))
    batch = source.add_dataframe_asset(frame_name).add_batch_definition_whole_dataframe("all")
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=frame_name, data=batch, suite=suite))
    run = definition.run(batch_parameters={"dataframe": frame}, result_format=_RESULT_FORMAT,
                         expectation_parameters={k: v for k, v in params.items() if k in suite.suite_parameter_options})
    order = {e.id: i for i, e in enumerate(suite.expectations)}
    for res in sorted(run.results, key=lambda r: order[r.expectation_config.id]):  # suite order
        exp = runnable[order[res.expectation_config.id]]  # the file's kwargs keep "$PARAMETER"
        rule, column = _describe(exp), _column_of(exp["kwargs"])
        errors = _exception_messages(res.exception_info or {})
        if errors:
            results.append(_result(frame_name, rule, column, False, None, errors))
        else:
            examples = _dedupe(res.result.get("partial_unexpected_list") or [])
            count = res.result.get("unexpected_count")
            results.append(_result(frame_name, rule, column, bool(res.success), count, examples))
    return results


def _exception_messages(info: dict) -> list[str]:
    """GE reports a raised expectation flat, or per metric when a metric failed to resolve."""
    found = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    return sorted({str(e.get("exception_message")) for e in found if e.get("raised_exception")})


def _parameters(kwargs: dict) -> set[str]:
    return {v["$PARAMETER"] for v in kwargs.values() if isinstance(v, dict) and "$PARAMETER" in v}


def _column_of(kwargs: dict) -> str | None:
    if "column_A" in kwargs:
        return f"{kwargs['column_A']}, {kwargs['column_B']}"
    return ", ".join(kwargs["column_list"]) if "column_list" in kwargs else kwargs.get("column")


def _describe(exp: dict) -> str:
    """The rule as it reads in messages: ``expect_column_values_to_be_in_set(status in ['up', ...])``."""
    kind, kw = exp["type"], exp["kwargs"]
    col, show = kw.get("column"), _show_value
    if kind.endswith("_to_be_in_set"):
        text = f"{col} in {show(kw.get('value_set'))}"
    elif kind.endswith("_to_not_be_null"):
        text = f"{col} not null"
    elif kind == "expect_column_values_to_be_unique":
        text = f"{col} unique"
    elif kind == "expect_column_values_to_be_between":
        lo, hi = kw.get("min_value"), kw.get("max_value")
        lo_op, hi_op = ("<" if kw.get("strict_min") else "<="), ("<" if kw.get("strict_max") else "<=")
        if lo is not None and hi is not None:
            text = f"{show(lo)} {lo_op} {col} {hi_op} {show(hi)}"
        elif lo is not None:
            text = f"{col} {lo_op.replace('<', '>')} {show(lo)}"
        else:
            text = f"{col} {hi_op} {show(hi)}"
    elif kind == "expect_compound_columns_to_be_unique":
        text = f"({', '.join(kw['column_list'])}) unique"
    elif kind == "expect_select_column_values_to_be_unique_within_record":
        text = " != ".join(kw["column_list"])
    elif kind == "expect_column_pair_values_a_to_be_greater_than_b":
        text = f"{kw['column_A']} {'>=' if kw.get('or_equal') else '>'} {kw['column_B']}"
    else:
        text = ", ".join(f"{k}={show(v)}" for k, v in kw.items() if k not in ("row_condition", "mostly"))
    if kw.get("row_condition"):
        cond = kw["row_condition"]
        if isinstance(cond, dict) and cond.get("type") == "comparison":
            text += f" where {cond['column']['name']} {cond['operator']} {cond['parameter']!r}"
        else:
            text += f" where {json.dumps(cond, sort_keys=True, default=str)}"
    if kw.get("mostly") not in (None, 1, 1.0):
        text += f", mostly {kw['mostly']}"
    return f"{kind}({text})"


def _show_value(value: object) -> str:
    if isinstance(value, dict) and "$PARAMETER" in value:
        return f"${value['$PARAMETER']}"
    return str(int(value)) if isinstance(value, float) and value.is_integer() else repr(value)


# --- results ----------------------------------------------------------------------------


def _result(suite: str, rule: str, column: str | None, success: bool, count: int | None = None,
            examples: list | tuple = ()) -> dict:
    return {"suite": suite, "rule": rule, "column": column, "success": success,
            "unexpected_count": count, "examples": list(examples)[:_MAX_EXAMPLES]}


def _dedupe(values: list[object]) -> list[object]:
    seen, out = set(), []
    for value in map(_jsonable, values):
        key = json.dumps(value, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append(value)
    return out[:_MAX_EXAMPLES]


def _jsonable(value: object) -> object:
    """Plain JSON values (timestamps as ISO UTC strings, NaN as None) for reports and messages."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic) and not isinstance(value, np.datetime64):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, (np.datetime64, datetime)):
        stamp = pd.Timestamp(value)  # every timestamp here is UTC (naive ones only inside GE)
        return None if pd.isna(stamp) else (stamp.tz_localize("UTC") if stamp.tz is None else stamp).isoformat()
    return str(value)
