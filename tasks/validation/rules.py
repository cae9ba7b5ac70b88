"""Rule descriptions and result records shared by validation, quarantine and Data Docs.

Pure helpers (no Great Expectations import): how an expectation reads in a message
(``expect_column_values_to_be_between(0 <= error_rate <= 1)``), which expectations judge
single rows (and may quarantine them) and which judge whole tables, and JSON-ready values.
"""

from __future__ import annotations

import json
import math
from datetime import datetime

import numpy as np
import pandas as pd

__all__ = [
    "MAX_EXAMPLES",
    "ROW_LEVEL_TYPES",
    "describe",
    "column_of",
    "parameters",
    "exception_messages",
    "is_row_level",
    "result",
    "dedupe",
    "jsonable",
    "merge_results",
]

MAX_EXAMPLES = 5

# Expectations that judge each row on its own: a row that breaks one can be quarantined.
# Uniqueness and table shape judge the whole table and always fail closed.
ROW_LEVEL_TYPES = (
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_between",
    "expect_column_values_to_match_regex",
    "expect_column_pair_values_a_to_be_greater_than_b",
    "expect_select_column_values_to_be_unique_within_record",
)


def is_row_level(exp: dict) -> bool:
    """Whether rows breaking ``exp`` may be quarantined (``meta.level`` overrides the default)."""
    level = (exp.get("meta") or {}).get("level")
    return level == "row" if level else exp["type"] in ROW_LEVEL_TYPES


def merge_results(results: list[dict]) -> list[dict]:
    """One record per (suite, rule, column) over many partitions: counts add up, examples merge.

    A broken rule names the first file it broke in (whose examples come first) and how many
    more files broke it; files where it passed are never named.
    """
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["suite"], r["rule"], r["column"]), []).append(r)
    merged = []
    for group in groups.values():
        failed = [r for r in group if not r["success"]]
        lead = failed or group
        m = {**lead[0], "success": not failed}
        counts = [r["unexpected_count"] for r in group if r["unexpected_count"] is not None]
        m["unexpected_count"] = sum(counts) if counts else None
        m["quarantined"] = sum(r.get("quarantined", 0) for r in group)
        m["examples"] = dedupe([e for r in lead for e in r["examples"]])
        if failed:
            files = list(dict.fromkeys(r.get("file") for r in failed if r.get("file")))
            m["file"] = (files[0] + (f" (+{len(files) - 1} more files)" if len(files) > 1 else "")) if files else None
        merged.append(m)
    return merged


def exception_messages(info: dict) -> list[str]:
    """GE reports a raised expectation flat, or per metric when a metric failed to resolve."""
    found = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    return sorted({str(e.get("exception_message")) for e in found if e.get("raised_exception")})


def parameters(kwargs: dict) -> set[str]:
    return {v["$PARAMETER"] for v in kwargs.values() if isinstance(v, dict) and "$PARAMETER" in v}


def column_of(kwargs: dict) -> str | None:
    if "column_A" in kwargs:
        return f"{kwargs['column_A']}, {kwargs['column_B']}"
    return ", ".join(kwargs["column_list"]) if "column_list" in kwargs else kwargs.get("column")


def describe(exp: dict) -> str:
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
    elif kind == "expect_column_values_to_match_regex":
        text = f"{col} matches {kw['regex']}"
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


def result(
    suite: str,
    rule: str,
    column: str | None,
    success: bool,
    count: int | None = None,
    examples: list | tuple = (),
    level: str = "table",
    file: str | None = None,
) -> dict:
    return {
        "suite": suite,
        "rule": rule,
        "column": column,
        "success": success,
        "unexpected_count": count,
        "examples": list(examples)[:MAX_EXAMPLES],
        "level": level,
        "quarantined": 0,
        "file": file,
    }


def dedupe(values: list[object]) -> list[object]:
    seen, out = set(), []
    for value in map(jsonable, values):
        key = json.dumps(value, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append(value)
    return out[:MAX_EXAMPLES]


def jsonable(value: object) -> object:
    """Plain JSON values (timestamps as ISO UTC strings, NaN as None) for reports and messages."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
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
