"""Validate telemetry tables: the pyarrow schema first, then the Great Expectations suites.

The schema step (``policies.schema``) makes sure every column is present, castable and
non-null where required, so that GE only ever sees well-typed frames. The semantic rules
(ranges, allowed values, uniqueness, references between tables) live as GE-native JSON in
``data/expectations/<suite>.json``. List columns (``incidents.affected``,
``workloads.requires``, ``workloads.risks``) are exploded into derived frames with their own
small suites (GE has no list-element expectations); their results are reported under the
parent table and list column. References to other tables are suite parameters
(``{"$PARAMETER": "service_ids"}``) filled at run time from the tables given.
"""

from __future__ import annotations

import os

# GE 1.24 ships no analytics sender any more; the context config below switches analytics off
# explicitly, and this variable (the name GE documents) covers any other context it may build.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

import json  # noqa: E402
import math  # noqa: E402
from collections.abc import Mapping  # noqa: E402
from dataclasses import dataclass  # noqa: E402
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

__all__ = ["SUITES_DIR", "TableReport", "ValidationReport", "load_suite_dict", "validate_tables"]

SUITES_DIR = Path(__file__).resolve().parents[1] / "data" / "expectations"

# Suite parameter -> (table, column) whose values it takes at run time.
PARAMETER_SOURCES = {"service_ids": ("services", "service_id"), "site_ids": ("sites", "site_id")}

# SUMMARY gives unexpected_count and a partial list; 20 leaves room to de-duplicate down to 5.
_RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 20}
_MAX_EXAMPLES = 5
_CAST_PROBES = 2000  # distinct values tried one by one to find examples of an uncastable column


@dataclass(frozen=True)
class TableReport:
    """Every check run on one table (schema, its suite and its list-column suites)."""

    table: str
    rows: int
    success: bool
    results: list[dict]


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of one validation: per table results and every broken rule."""

    success: bool
    tables: dict[str, TableReport]
    rows_validated: int
    violations: list[RuleViolation]

    def as_dict(self) -> dict:
        """JSON-ready (for an MLflow artifact)."""
        return {
            "success": self.success,
            "rows_validated": self.rows_validated,
            "tables": {
                name: {"table": t.table, "rows": t.rows, "success": t.success, "results": t.results}
                for name, t in self.tables.items()
            },
            "violations": [v.as_dict() for v in self.violations],
        }


def validate_tables(
    tables: Mapping[str, pa.Table],
    *,
    files: Mapping[str, str] | None = None,
    raise_on_failure: bool = True,
) -> ValidationReport:
    """Check every given table against its schema and suites; raise DataValidationError on a break.

    ``files`` maps a table name to the file or folder it was read from, so that messages name it.
    References (service ids, site ids) are taken from the ``services`` and ``sites`` tables given
    here: a table that refers to one that is absent fails closed.
    """
    files = dict(files or {})
    params = _reference_values(tables)
    context = _new_context()
    source = context.data_sources.add_pandas("telemetry")
    reports: dict[str, TableReport] = {}
    violations: list[RuleViolation] = []
    for name, raw in tables.items():
        file = files.get(name)
        typed, broken = _check_schema(name, raw, file)
        results = [_schema_result(v) for v in broken] or [_schema_result(None)]
        if typed is not None:
            for frame_name, frame in _frames_for(name, typed).items():
                found, frame_broken = _run_suite(context, source, frame_name, frame, params, name, file)
                results += found
                broken += frame_broken
        reports[name] = TableReport(name, raw.num_rows, not broken, results)
        violations += broken
    report = ValidationReport(
        success=not violations,
        tables=reports,
        rows_validated=sum(r.rows for r in reports.values()),
        violations=violations,
    )
    if violations and raise_on_failure:
        raise DataValidationError(violations)
    return report


# --- schema (pyarrow) -------------------------------------------------------------------


def _check_schema(
    name: str, table: pa.Table, file: str | None
) -> tuple[pa.Table | None, list[RuleViolation]]:
    """Cast ``table`` to its contract; the cast table, or None with what was wrong."""
    if name not in TABLES:
        rule = f"schema: unknown table (known: {', '.join(TABLES)})"
        return None, [RuleViolation(name, None, rule, file=file)]
    schema = TABLES[name]
    broken = [
        RuleViolation(name, col, "schema: missing column", file=file)
        for col in schema.names
        if col not in table.column_names
    ]
    broken += [
        RuleViolation(name, col, "schema: unexpected column", _examples(table[col]), file=file)
        for col in table.column_names
        if col not in schema.names
    ]
    columns = []
    for field in schema:
        if field.name not in table.column_names:
            continue
        column = table[field.name]
        try:
            column = pc.cast(column, options=_cast_options(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            rule = f"schema: type {column.type} not castable to {field.type}"
            bad = _uncastable_values(column, field.type)
            broken.append(RuleViolation(name, field.name, rule, bad, file=file))
            continue
        if not field.nullable and column.null_count:
            rows = pc.indices_nonzero(pc.is_null(column).combine_chunks())[:_MAX_EXAMPLES]
            examples = [f"row {i}" for i in rows.to_pylist()]
            rule = "schema: null in non-nullable column"
            broken.append(RuleViolation(name, field.name, rule, examples, column.null_count, file))
        columns.append(column)
    if broken:
        return None, broken
    return pa.Table.from_arrays(columns, schema=schema), []


def _cast_options(target: pa.DataType) -> pc.CastOptions:
    # Safe casts, except that finer timestamps may be truncated to the contract's milliseconds.
    return pc.CastOptions(target, allow_time_truncate=True)


def _uncastable_values(column: pa.ChunkedArray, target: pa.DataType) -> list[object]:
    """A few values that do not cast (all values fail when the types cannot cast at all)."""
    try:
        candidates = pc.unique(column)
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        candidates = column.combine_chunks()
    found: list[object] = []
    for i in range(min(len(candidates), _CAST_PROBES)):
        one = candidates.slice(i, 1)
        try:
            pc.cast(one, options=_cast_options(target))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            found.append(_jsonable(one[0].as_py()))
            if len(found) == _MAX_EXAMPLES:
                break
    return found


def _schema_result(violation: RuleViolation | None) -> dict:
    if violation is None:
        return _result("schema", "schema: columns, types and nulls match", None, True, 0, [])
    count = violation.count
    return _result("schema", violation.rule, violation.column, False, count, violation.examples)


# --- frames for GE ----------------------------------------------------------------------


def _frames_for(name: str, table: pa.Table) -> dict[str, pd.DataFrame]:
    """The table's own frame plus one exploded frame per list column."""
    lists = [f for f in table.schema if pa.types.is_list(f.type)]
    frames = {name: _to_pandas(table.drop_columns([f.name for f in lists]))}
    key = table.column_names[0]
    for field in lists:
        column = table[field.name].combine_chunks()
        parents = pc.list_parent_indices(column)
        values = pc.list_flatten(column)
        derived = {key: pc.take(table[key], parents)}
        if pa.types.is_struct(values.type):
            for i, sub in enumerate(values.type):
                derived[f"{field.name}.{sub.name}"] = pc.struct_field(values, [i])
        else:
            derived[field.name] = values
        frames[f"{name}.{field.name}"] = _to_pandas(pa.table(derived))
    return frames


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    """Strings become categoricals: measured fastest for GE (ArrowDtype is ~10x slower)."""
    for i, field in enumerate(table.schema):
        if pa.types.is_string(field.type):
            table = table.set_column(i, field.name, pc.dictionary_encode(table[i]))
    return table.to_pandas()


def _reference_values(tables: Mapping[str, pa.Table]) -> dict[str, list[str]]:
    """Values for suite parameters, read from the tables they refer to (when readable)."""
    params = {}
    for param, (source, column) in PARAMETER_SOURCES.items():
        table = tables.get(source)
        if table is None or column not in table.column_names:
            continue
        try:
            values = pc.unique(pc.cast(table[column], pa.string())).drop_null()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        params[param] = sorted(values.to_pylist())
    return params


# --- GE ---------------------------------------------------------------------------------


def _new_context():
    """An in-memory context with analytics and progress bars off (cheap: a few ms)."""
    config = DataContextConfig(
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        store_backend_defaults=InMemoryStoreBackendDefaults(),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def load_suite_dict(suite_name: str) -> dict:
    """The GE-native suite JSON for a table or a derived frame (``workloads.requires``)."""
    path = SUITES_DIR / f"{suite_name}.json"
    if not path.exists():
        raise FileNotFoundError(f"no expectation suite for {suite_name!r}: add {path}")
    return json.loads(path.read_text())


def _run_suite(
    context, source, frame_name: str, frame: pd.DataFrame, params: dict, table: str, file: str | None
) -> tuple[list[dict], list[RuleViolation]]:
    """Run one suite on one frame; its results and the rules it found broken."""
    spec = load_suite_dict(frame_name)
    runnable, results, broken = [], [], []
    for exp in spec["expectations"]:
        missing = _parameters(exp["kwargs"]) - params.keys()
        if not missing:
            runnable.append(exp)
            continue
        # A reference that cannot be checked fails closed rather than passing unchecked.
        sources = ", ".join(sorted(PARAMETER_SOURCES[p][0] for p in missing))
        rule = f"{_describe(exp)}: needs table(s) {sources}, absent or unreadable"
        column = _column_of(exp["kwargs"])
        results.append(_result(frame_name, rule, column, False, None, []))
        broken.append(RuleViolation(table, column, rule, file=file))
    suite = context.suites.add(gx.ExpectationSuite(**{**spec, "expectations": runnable}))
    asset = source.add_dataframe_asset(frame_name)
    batch = asset.add_batch_definition_whole_dataframe("all")
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=frame_name, data=batch, suite=suite)
    )
    run = definition.run(
        batch_parameters={"dataframe": frame},
        expectation_parameters={k: v for k, v in params.items() if k in suite.suite_parameter_options},
        result_format=_RESULT_FORMAT,
    )
    by_id = {e.id: runnable[i] for i, e in enumerate(suite.expectations)}
    for res in run.results:
        exp = by_id[res.expectation_config.id]  # the suite's own kwargs keep "$PARAMETER"
        rule, column = _describe(exp), _column_of(exp["kwargs"])
        info = res.exception_info or {}
        if info.get("raised_exception"):
            examples = [info.get("exception_message")]
            results.append(_result(frame_name, rule, column, False, None, examples))
        else:
            count = res.result.get("unexpected_count")
            examples = _dedupe(res.result.get("partial_unexpected_list") or [])
            results.append(_result(frame_name, rule, column, bool(res.success), count, examples))
        if not results[-1]["success"]:
            last = results[-1]
            broken.append(RuleViolation(table, column, rule, last["examples"], last["unexpected_count"], file))
    return results, broken


def _parameters(kwargs: dict) -> set[str]:
    return {v["$PARAMETER"] for v in kwargs.values() if isinstance(v, dict) and "$PARAMETER" in v}


def _column_of(kwargs: dict) -> str | None:
    if "column" in kwargs:
        return kwargs["column"]
    if "column_list" in kwargs:
        return ", ".join(kwargs["column_list"])
    if "column_A" in kwargs:
        return f"{kwargs['column_A']}, {kwargs['column_B']}"
    return None


def _describe(exp: dict) -> str:
    """``expect_column_values_to_be_in_set(status in ['up', 'degraded', 'down'])``."""
    kind, kw = exp["type"], exp["kwargs"]
    col, show = kw.get("column"), _show_value
    if kind.endswith("_to_be_in_set"):
        text = f"{col} in {show(kw.get('value_set'))}"
    elif kind.endswith("_to_not_be_null"):
        text = f"{col} not null"
    elif kind == "expect_column_values_to_be_unique":
        text = f"{col} unique"
    elif kind.endswith("_to_be_between"):
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
        text = ", ".join(f"{k}={show(v)}" for k, v in kw.items())
    if kw.get("row_condition"):
        text += f" where {_show_condition(kw['row_condition'])}"
    if kw.get("mostly") not in (None, 1, 1.0):
        text += f", mostly {kw['mostly']}"
    return f"{kind}({text})"


def _show_value(value: object) -> str:
    if isinstance(value, dict) and "$PARAMETER" in value:
        return f"${value['$PARAMETER']}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


def _show_condition(cond: object) -> str:
    if isinstance(cond, dict) and cond.get("type") == "comparison":
        return f"{cond['column']['name']} {cond['operator']} {cond['parameter']!r}"
    return json.dumps(cond, sort_keys=True, default=str)


# --- results ----------------------------------------------------------------------------


def _result(suite, rule, column, success, count, examples) -> dict:
    return {
        "suite": suite,
        "rule": rule,
        "column": column,
        "success": success,
        "unexpected_count": count,
        "examples": list(examples)[:_MAX_EXAMPLES],
    }


def _examples(column: pa.ChunkedArray) -> list[object]:
    return [_jsonable(v) for v in column.slice(0, _MAX_EXAMPLES).to_pylist()]


def _dedupe(values: list[object]) -> list[object]:
    seen, out = set(), []
    for value in map(_jsonable, values):
        key = json.dumps(value, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append(value)
    return out[:_MAX_EXAMPLES]


def _jsonable(value: object) -> object:
    """Plain JSON values (timestamps as ISO strings, NaN as None) for reports and messages."""
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
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)
