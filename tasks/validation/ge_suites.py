"""The Great Expectations side of validation: suites as GE-native JSON, run in an in-memory context.

Suites live in ``data/expectations/<suite>.json``, one per table and one per list column
(``workloads.requires``). Each suite is built into one ValidationDefinition once and reused
for every batch of files (building one costs more than running it on a small frame).
"""

from __future__ import annotations

import os

# GE 1.24 ships no analytics sender any more; the context config below switches analytics off
# explicitly, and this variable (the name GE documents) covers any other context it builds.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

import json
from pathlib import Path

import great_expectations as gx
import pandas as pd
import pyarrow as pa
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)

from policies.schema import TABLES
from tasks.validation.references import check_reference, is_reference_rule
from tasks.validation.rules import column_of, dedupe, describe, exception_messages, is_row_level, parameters, result

__all__ = [
    "SUITES_DIR",
    "PARAMETER_SOURCES",
    "NOW_PARAMETER",
    "load_suite_dict",
    "suite_expectations",
    "new_context",
    "SuiteRunner",
]

SUITES_DIR = Path(__file__).resolve().parents[2] / "data" / "expectations"

# Suite parameter -> the (table, column) whose values it takes at run time.
PARAMETER_SOURCES = {"service_ids": ("services", "service_id"), "site_ids": ("sites", "site_id")}
NOW_PARAMETER = "now_utc"  # "not in the future": filled with the validation's reference time

# COMPLETE lists the index of every unexpected row (for quarantine); GE only builds it for failures.
_RESULT_FORMAT = {"result_format": "COMPLETE", "partial_unexpected_count": 20, "return_unexpected_index_query": False}


def load_suite_dict(suite_name: str) -> dict:
    """The GE-native suite JSON of a table or a derived frame (``workloads.requires``)."""
    path = SUITES_DIR / f"{suite_name}.json"
    if not path.exists():
        raise FileNotFoundError(f"no expectation suite for {suite_name!r}: add {path}")
    return json.loads(path.read_text())


def suite_expectations(name: str) -> list[dict]:
    """Every expectation GE runs on a table: its suite and its list columns' suites."""
    if name not in TABLES:
        return []
    names = [name] + [f"{name}.{f.name}" for f in TABLES[name] if pa.types.is_list(f.type)]
    return [e for n in names for e in load_suite_dict(n)["expectations"]]


def new_context():
    """An in-memory context with analytics and progress bars off (a few ms to build)."""
    config = DataContextConfig(
        analytics_enabled=False,
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


class SuiteRunner:
    """Runs each suite through one ValidationDefinition, built once and reused for every part."""

    def __init__(self, context, source, *, native_references: bool = True) -> None:
        self.context, self.source, self.native = context, source, native_references
        self.built: dict[tuple, tuple] = {}

    def run(self, frame_name: str, frame: pd.DataFrame, params: dict) -> list[dict]:
        """One result per expectation, in suite order; failures carry ``_rows`` (parent rows) and ``_values``.

        Reference rules (``tasks.validation.references``) are answered here, beside GE, in GE's form.
        """
        spec = load_suite_dict(frame_name)
        runnable, native, slots = [], [], []
        for exp in spec["expectations"]:
            missing = parameters(exp["kwargs"]) - params.keys()
            if missing:  # a reference that cannot be checked fails closed rather than passing unchecked
                needs = ", ".join(sorted(PARAMETER_SOURCES[p][0] for p in missing if p in PARAMETER_SOURCES))
                rule = f"{describe(exp)}: needs table(s) {needs}, absent or unreadable"
                slots.append(result(frame_name, rule, column_of(exp["kwargs"]), False))
            elif self.native and is_reference_rule(exp, PARAMETER_SOURCES) and exp["kwargs"]["column"] in frame:
                native.append(exp)
                slots.append(("native", len(native) - 1))
            else:
                runnable.append(exp)
                slots.append(("ge", len(runnable) - 1))
        answers = {("ge", i): a for i, a in enumerate(self._run_ge(spec, frame, params, runnable))}
        for i, exp in enumerate(native):
            value_set = params[parameters(exp["kwargs"]).pop()]
            answers["native", i] = (exp, check_reference(frame, exp["kwargs"]["column"], value_set), {})
        return [s if isinstance(s, dict) else _record(frame_name, *answers[s]) for s in slots]

    def _run_ge(self, spec: dict, frame: pd.DataFrame, params: dict, runnable: list[dict]) -> list[tuple]:
        """(expectation, GE's result dict with its success, exception info) per runnable expectation, in order."""
        if not runnable:
            return []
        frame_name = spec["name"]
        key = (frame_name, tuple(json.dumps(e, sort_keys=True) for e in runnable))
        if key not in self.built:
            suite = self.context.suites.add(
                gx.ExpectationSuite(**{**spec, "name": f"{frame_name}-{len(self.built)}", "expectations": runnable})
            )
            asset = self.source.add_dataframe_asset(f"{frame_name}-{len(self.built)}")
            batch = asset.add_batch_definition_whole_dataframe("all")
            definition = self.context.validation_definitions.add(
                gx.ValidationDefinition(name=f"{frame_name}-{len(self.built)}", data=batch, suite=suite)
            )
            self.built[key] = (suite, definition)
        suite, definition = self.built[key]
        run = definition.run(
            batch_parameters={"dataframe": frame},
            result_format=_RESULT_FORMAT,
            expectation_parameters={k: v for k, v in params.items() if k in suite.suite_parameter_options},
        )
        order = {e.id: i for i, e in enumerate(suite.expectations)}
        out = [None] * len(runnable)
        for res in run.results:
            i = order[res.expectation_config.id]
            answer = {**res.result, "success": res.success}
            out[i] = (runnable[i], answer, res.exception_info or {})  # the file's kwargs keep "$PARAMETER"
        return out


def _record(frame_name: str, exp: dict, answer: dict, exception_info: dict) -> dict:
    """A result record from GE's result dict (or the same shape from a reference check)."""
    rule, column = describe(exp), column_of(exp["kwargs"])
    level = "row" if is_row_level(exp) else "table"
    errors = exception_messages(exception_info)
    if errors:
        return result(frame_name, rule, column, False, None, errors, "table")
    success = bool(answer["success"])
    examples = dedupe(answer.get("partial_unexpected_list") or [])
    if not success and not examples and answer.get("observed_value") is not None:
        examples = [f"observed {answer['observed_value']}"]  # a table rule (row count): what it saw
    r = result(frame_name, rule, column, success, answer.get("unexpected_count"), examples, level)
    if not success and answer.get("unexpected_index_list") is not None:
        r["_rows"] = answer["unexpected_index_list"]
        r["_values"] = answer.get("unexpected_list")
    return r
