"""GE runs once per batch of consecutive files; every answer still names the file and rows it came from."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from policies.telemetry.ingest import load_telemetry
from tasks.validation.frames import batch_safe, plan_batches
from tasks.validation.ge_suites import SuiteRunner, load_suite_dict
from tasks.validation.rules import merge_results, result
from tasks.validation.suite import validate_parts
from tasks.validation.table import series_ordered

ROWS_PER_PART = 4000


def _parts(small_sample: Path, n: int = 5) -> dict[str, list[tuple[str, pa.Table]]]:
    """The sample's tables, health checks cut into ``n`` consecutive files of a few thousand rows."""
    tables = load_telemetry(small_sample).tables
    parts = {name: [(f"/in/{name}.parquet", t)] for name, t in tables.items() if name != "health_checks"}
    checks = tables["health_checks"]
    parts["health_checks"] = [
        (f"/in/hc/part-{k}.parquet", checks.slice(k * ROWS_PER_PART, ROWS_PER_PART)) for k in range(n)
    ]
    return parts


def _set(parts: dict, k: int, column: str, rows: dict[int, object]) -> None:
    file, t = parts["health_checks"][k]
    values = t[column].to_pylist()
    for i, v in rows.items():
        values[i] = v
    parts["health_checks"][k] = (
        file,
        t.set_column(t.column_names.index(column), column, pa.array(values, t.schema.field(column).type)),
    )


@pytest.fixture(scope="module")
def broken_parts(small_sample: Path) -> dict:
    """Negative latencies in parts 1 and 3, an unknown status in part 3; parts 0, 2 and 4 are clean."""
    parts = _parts(small_sample)
    _set(parts, 1, "latency_ms", {5: -1.0, 9: -2.0})
    _set(parts, 3, "latency_ms", {7: -3.0})
    _set(parts, 3, "status", {11: "sideways"})
    return parts


def _counted_runs(monkeypatch) -> list[int]:
    """How many frames GE validated (the real runner runs; this only counts the calls)."""
    rows: list[int] = []
    real = SuiteRunner.run

    def run(self, frame_name, frame, params):
        if frame_name == "health_checks":
            rows.append(len(frame))
        return real(self, frame_name, frame, params)

    monkeypatch.setattr(SuiteRunner, "run", run)
    return rows


def test_batched_and_per_file_validation_give_the_same_answers(broken_parts, monkeypatch) -> None:
    runs = _counted_runs(monkeypatch)
    one_by_one = validate_parts(broken_parts, raise_on_failure=False, quarantine_max_share=0.01, batch_rows=0)
    assert runs == [ROWS_PER_PART] * 5
    runs.clear()
    batched = validate_parts(
        broken_parts, raise_on_failure=False, quarantine_max_share=0.01, batch_rows=3 * ROWS_PER_PART
    )
    assert runs == [3 * ROWS_PER_PART, 2 * ROWS_PER_PART]
    assert batched.success and one_by_one.success
    assert batched.tables["health_checks"].results == one_by_one.tables["health_checks"].results
    q = batched.quarantine["health_checks"]
    assert q.equals(one_by_one.quarantine["health_checks"])
    assert q["_file"].to_pylist() == ["/in/hc/part-1.parquet"] * 2 + ["/in/hc/part-3.parquet"] * 2
    assert q["_rule"].to_pylist()[:3] == ["expect_column_values_to_be_between(latency_ms >= 0)"] * 3
    assert batched.clean["health_checks"].equals(one_by_one.clean["health_checks"])
    assert batched.clean["health_checks"].num_rows == 5 * ROWS_PER_PART - 4


def test_a_rule_broken_in_several_files_of_a_batch_names_the_first_and_its_example(broken_parts) -> None:
    report = validate_parts(broken_parts, raise_on_failure=False, quarantine_max_share=0.0, batch_rows=10**9)
    latency = next(v for v in report.violations if v.column == "latency_ms")
    assert latency.count == 3
    assert latency.file == "/in/hc/part-1.parquet (+1 more files)"
    assert latency.examples[:2] == [-1.0, -2.0] and -3.0 in latency.examples  # the named file's examples first
    status = next(v for v in report.violations if v.column == "status")
    assert (status.file, status.count, status.examples) == ("/in/hc/part-3.parquet", 1, ["sideways"])
    passed = next(r for r in report.tables["health_checks"].results if r["column"] == "error_rate")
    assert passed["success"] and passed["unexpected_count"] == 0


def test_an_empty_file_is_checked_alone_and_named(small_sample: Path) -> None:
    parts = _parts(small_sample, n=3)
    file, t = parts["health_checks"][1]
    parts["health_checks"][1] = ("/in/hc/empty.parquet", t.slice(0, 0))
    report = validate_parts(parts, raise_on_failure=False, batch_rows=10**9)
    (v,) = report.violations
    assert v.file == "/in/hc/empty.parquet" and v.rule.startswith("expect_table_row_count_to_be_between")


def test_duplicates_across_files_of_one_batch_name_both_files(small_sample: Path) -> None:
    parts = _parts(small_sample, n=3)
    first, second = parts["health_checks"][0][1], parts["health_checks"][2][1]
    parts["health_checks"][2] = ("/in/hc/part-2.parquet", pa.concat_tables([second, first.slice(0, 1)]))
    report = validate_parts(parts, raise_on_failure=False, batch_rows=10**9)
    rules = {v.rule.split("(")[0]: v for v in report.violations}
    unique = rules["expect_compound_columns_to_be_unique"]
    assert unique.file == "/in/hc/part-0.parquet (+1 more files)" and unique.count == 2
    series = next(v for v in report.violations if v.rule.startswith("series:"))
    assert series.file == "/in/hc/part-0.parquet, /in/hc/part-2.parquet" and series.count == 1


def test_plan_batches_keeps_order_and_sets_empty_files_apart() -> None:
    assert plan_batches([3, 3, 3, 0, 3, 9, 1], 6) == [[0, 1], [2], [3], [4], [5], [6]]
    assert plan_batches([1, 1, 1], 0) == [[0], [1], [2]]
    assert plan_batches([], 5) == []


def test_only_suites_whose_answers_cannot_change_are_batched() -> None:
    assert batch_safe(load_suite_dict("health_checks")["expectations"])
    row = {"type": "expect_column_values_to_be_between", "kwargs": {"column": "x", "min_value": 0}}
    assert batch_safe([row])
    assert not batch_safe([{**row, "kwargs": {**row["kwargs"], "mostly": 0.9}}])  # a share per batch is not per file
    assert not batch_safe([{"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 10}}])
    assert not batch_safe([{"type": "expect_column_mean_to_be_between", "kwargs": {"column": "x", "max_value": 1}}])


def test_merged_results_never_name_a_file_where_the_rule_passed() -> None:
    rule = "expect_column_values_to_be_between(x >= 0)"
    merged = merge_results(
        [
            result("t", rule, "x", True, 0, [], "row", "a"),
            result("t", rule, "x", False, 2, [-1, -2], "row", "b"),
            result("t", rule, "x", False, 1, [-9], "row", "c"),
        ]
    )
    assert [(m["file"], m["unexpected_count"], m["examples"], m["success"]) for m in merged] == [
        ("b (+1 more files)", 3, [-1, -2, -9], False)
    ]


def test_series_rule_checks_files_whose_times_overlap(small_sample: Path) -> None:
    checks = load_telemetry(small_sample).tables["health_checks"].slice(0, 20000)
    services = sorted(set(checks["service_id"].to_pylist()))
    by_service = [checks.filter(pa.compute.is_in(checks["service_id"], pa.array(services[i::2]))) for i in (0, 1)]
    whole = pa.concat_tables(by_service)  # two files, each covering the whole time range
    files = [("a", by_service[0].num_rows), ("b", by_service[1].num_rows)]
    assert series_ordered(whole, ("service_id", "probe", "ts"), files)["success"]
    repeat = by_service[0].slice(3, 1)
    later = checks.slice(0, 1).set_column(
        0,
        checks.schema.field("ts"),
        pa.array([checks["ts"][0].as_py() + timedelta(days=30)], checks.schema.field("ts").type),
    )
    res = series_ordered(
        pa.concat_tables([whole, later, repeat]), ("service_id", "probe", "ts"), files + [("c", 1), ("d", 1)]
    )
    assert (res["success"], res["unexpected_count"], res["file"]) == (False, 1, "a, d")


def test_counts_stay_exact_past_the_values_ge_keeps(small_sample: Path) -> None:
    parts = _parts(small_sample, n=4)
    for k in (1, 2, 3):  # 12,000 unknown services; GE returns every index but only 200 values
        _set(parts, k, "service_id", {i: f"ghost-{k}-{i}" for i in range(ROWS_PER_PART)})
    report = validate_parts(parts, raise_on_failure=False, batch_rows=10**9)
    (v,) = report.violations
    assert (v.column, v.count, v.file) == ("service_id", 3 * ROWS_PER_PART, "/in/hc/part-1.parquet (+2 more files)")
    assert v.examples == [f"ghost-1-{i}" for i in range(5)]
