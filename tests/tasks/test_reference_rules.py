"""Reference rules (values among another table's ids) answered beside GE give GE's own answers."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from policies.errors import DataValidationError
from policies.telemetry.ingest import load_telemetry
from tasks.validation.frames import frames_for
from tasks.validation.ge_suites import PARAMETER_SOURCES, SUITES_DIR, SuiteRunner, load_suite_dict, new_context
from tasks.validation.references import is_reference_rule
from tasks.validation.suite import validate_parts


def _runner(native: bool) -> SuiteRunner:
    context = new_context()
    return SuiteRunner(context, context.data_sources.add_pandas("t"), native_references=native)


def _with(table: pa.Table, column: str, rows: dict[int, object]) -> pa.Table:
    values = table[column].to_pylist()
    for i, v in rows.items():
        values[i] = v
    return table.set_column(table.column_names.index(column), column, pa.array(values, table.schema.field(column).type))


@pytest.fixture(scope="module")
def broken(small_sample: Path) -> dict[str, pa.Table]:
    """The sample with unknown ids: 300 in the checks (past GE's 200 kept values), in lists, and a null."""
    tables = dict(load_telemetry(small_sample).tables)
    checks = tables["health_checks"].slice(0, 6000)
    tables["health_checks"] = _with(checks, "service_id", {i * 17 + 3: f"ghost-{i % 40}" for i in range(300)})
    tables["incidents"] = _with(tables["incidents"], "affected", {0: ["ghost-a", None, "ghost-a"], 1: []})
    requires = tables["workloads"]["requires"].to_pylist()
    tables["workloads"] = _with(tables["workloads"], "requires", {2: [*requires[2], "ghost-w"]})
    tables["services"] = _with(tables["services"], "region", {1: "ghost-region", 2: None})
    tables["sites"] = _with(tables["sites"], "region", {0: "ghost-region"})
    tables["standby_candidates"] = _with(tables["standby_candidates"], "site_id", {0: "site-ghost", 1: "site-ghost"})
    return tables


def _params(tables: dict[str, pa.Table]) -> dict:
    return {p: sorted(set(tables[t][c].drop_null().to_pylist())) for p, (t, c) in PARAMETER_SOURCES.items()}


def test_every_reference_rule_in_the_suites_is_taken_out_of_ge() -> None:
    """The health checks' service id rule, and every other plain id rule, is answered beside GE."""
    names = [p.stem for p in SUITES_DIR.glob("*.json")]
    taken = {
        n: [
            e["kwargs"]["column"] for e in load_suite_dict(n)["expectations"] if is_reference_rule(e, PARAMETER_SOURCES)
        ]
        for n in names
    }
    assert taken["health_checks"] == ["service_id"]
    assert taken["dependencies"] == ["service_id", "depends_on"]
    assert taken["standby_candidates"] == ["service_id", "site_id"]
    assert not is_reference_rule(
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "status", "value_set": ["up"]}},
        PARAMETER_SOURCES,
    )
    assert not is_reference_rule(
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "c", "value_set": {"$PARAMETER": "service_ids"}, "mostly": 0.9},
        },
        PARAMETER_SOURCES,
    )


@pytest.mark.parametrize(
    "name", ["health_checks", "incidents", "workloads", "services", "dependencies", "sites", "standby_candidates"]
)
def test_reference_answers_equal_great_expectations(broken: dict[str, pa.Table], name: str) -> None:
    """Same records, row indices and kept values as GE's COMPLETE results, suite order included."""
    params = _params(broken)
    native, ge = _runner(True), _runner(False)
    for frame_name, frame in frames_for(name, broken[name]).items():
        assert native.run(frame_name, frame, params) == ge.run(frame_name, frame, params)
        empty = frame.iloc[:0]
        assert native.run(frame_name, empty, params) == ge.run(frame_name, empty, params)


def test_the_broken_fixture_breaks_reference_rules(broken: dict[str, pa.Table]) -> None:
    """Guard for the comparison above: the native answers do fail, with GE's truncation at 200 values."""
    params = _params(broken)
    frame = frames_for("health_checks", broken["health_checks"])["health_checks"]
    (ref,) = [r for r in _runner(True).run("health_checks", frame, params) if r["column"] == "service_id"]
    assert (ref["success"], ref["unexpected_count"], len(ref["_rows"]), len(ref["_values"])) == (False, 300, 300, 200)
    assert ref["examples"] == [f"ghost-{i}" for i in range(5)]
    assert ref["_rows"][:2] == [3, 20]


def _parts(tables: dict[str, pa.Table]) -> dict:
    return {n: [(f"/in/{n}.parquet", t)] for n, t in tables.items()}


def test_unknown_service_is_refused_naming_file_table_column_rule_and_value(small_sample: Path) -> None:
    tables = dict(load_telemetry(small_sample).tables)
    tables["health_checks"] = _with(tables["health_checks"].slice(0, 3000), "service_id", {7: "svc-ghost"})
    with pytest.raises(DataValidationError) as err:
        validate_parts(_parts(tables))
    (v,) = err.value.violations
    assert (v.table, v.column, v.count, v.examples, v.file) == (
        "health_checks",
        "service_id",
        1,
        ["svc-ghost"],
        "/in/health_checks.parquet",
    )
    assert v.rule == "expect_column_values_to_be_in_set(service_id in $service_ids)"
    assert "svc-ghost" in str(err.value) and "/in/health_checks.parquet" in str(err.value)


def test_unknown_service_is_quarantined_within_the_share(small_sample: Path) -> None:
    tables = dict(load_telemetry(small_sample).tables)
    checks = tables["health_checks"].slice(0, 3000)
    tables["health_checks"] = _with(checks, "service_id", {7: "svc-ghost", 9: "svc-gone"})
    report = validate_parts(_parts(tables), quarantine_max_share=0.01)
    held = report.quarantine["health_checks"]
    assert held["service_id"].to_pylist() == ["svc-ghost", "svc-gone"]
    assert set(held["_rule"].to_pylist()) == {"expect_column_values_to_be_in_set(service_id in $service_ids)"}
    assert held["_file"].to_pylist() == ["/in/health_checks.parquet"] * 2
    assert report.clean["health_checks"].num_rows == 2998
    assert not {"svc-ghost", "svc-gone"} & set(report.clean["health_checks"]["service_id"].to_pylist())
