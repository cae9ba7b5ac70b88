"""validate_tables: the pyarrow schema step, then the Great Expectations suites, on small tables."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from policies.errors import DataValidationError
from policies.schema import TABLES
from tasks.validation.ge_suites import SUITES_DIR, load_suite_dict
from tasks.validation.suite import ValidationReport, validate_tables

T0 = datetime(2026, 10, 1, tzinfo=UTC)
Rows = dict[str, list[dict]]


def valid_rows() -> Rows:
    """A tiny, consistent set of the 7 tables (row dicts, so that cases can edit one value)."""
    return {
        "services": [
            {"service_id": "region-eu", "kind": "region", "tier": 0, "capacity": 100.0, "region": None},
            {"service_id": "saas-pay", "kind": "saas", "tier": 0, "capacity": 0.0, "region": None},
            {"service_id": "svc-api", "kind": "internal", "tier": 1, "capacity": 10.0, "region": "region-eu"},
            {"service_id": "edge-cdn", "kind": "edge", "tier": 3, "capacity": 5.0, "region": "region-eu"},
        ],
        "dependencies": [
            {"service_id": "svc-api", "depends_on": "saas-pay", "hard": True},
            {"service_id": "svc-api", "depends_on": "region-eu", "hard": True},
            {"service_id": "edge-cdn", "depends_on": "svc-api", "hard": False},
        ],
        "health_checks": [
            {
                "ts": T0 + timedelta(minutes=i),
                "service_id": s,
                "probe": "http",
                "status": st,
                "latency_ms": lat,
                "error_rate": er,
                "http_code": code,
            }
            for i, (s, st, lat, er, code) in enumerate(
                [
                    ("svc-api", "up", 12.5, 0.0, 200),
                    ("saas-pay", "degraded", 900.0, 0.2, 200),
                    ("saas-pay", "down", None, 1.0, None),  # timed out: null latency and code are fine
                    ("region-eu", "up", 3.0, 0.0, 204),
                ]
            )
        ],
        "incidents": [
            {
                "incident_id": "INC-1",
                "started_at": T0,
                "resolved_at": T0 + timedelta(hours=1),
                "severity": 2,
                "affected": ["saas-pay", "svc-api"],
                "summary": "payments down",
            },
            {
                "incident_id": "INC-2",
                "started_at": T0 + timedelta(days=1),
                "resolved_at": None,
                "severity": 4,
                "affected": ["edge-cdn"],
                "summary": None,
            },
        ],
        "workloads": [
            {
                "workload_id": "checkout",
                "service_id": "svc-api",
                "value_per_hour": 500.0,
                "demand": 4.0,
                "requires": ["saas-pay"],
                "risks": [{"depends_on": "region-eu", "cost_per_hour": 20.0}],
                "min_share": 0.5,
                "tier": 0,
            },
            {
                "workload_id": "reports",
                "service_id": "svc-api",
                "value_per_hour": 10.0,
                "demand": 1.0,
                "requires": [],
                "risks": [],
                "min_share": 0.0,
                "tier": 3,
            },
        ],
        "sites": [
            {"site_id": "site-eu", "region": "region-eu", "budget": 50.0},
            {"site_id": "site-hq", "region": None, "budget": 0.0},
        ],
        "standby_candidates": [
            {"candidate_id": "c1", "service_id": "saas-pay", "site_id": "site-eu", "cost": 10.0, "coverage": 0.8},
            {"candidate_id": "c2", "service_id": "svc-api", "site_id": "site-hq", "cost": 0.0, "coverage": 1.0},
        ],
    }


def to_tables(rows: Rows) -> dict[str, pa.Table]:
    return {name: pa.Table.from_pylist(r, schema=TABLES[name]) for name, r in rows.items()}


def edit(table: str, row: int, **values: object) -> Callable[[Rows], Rows]:
    def apply(rows: Rows) -> Rows:
        rows[table][row].update(values)
        return rows

    return apply


def append(table: str, row: dict) -> Callable[[Rows], Rows]:
    def apply(rows: Rows) -> Rows:
        rows[table].append(row)
        return rows

    return apply


def replace_column(table: str, column: str, array: pa.Array) -> Callable[[dict], dict]:
    """For the schema cases: a table that does not conform (built without its schema)."""

    def apply(tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
        t = tables[table]
        if array is None:
            tables[table] = t.drop_columns([column])
        elif column in t.column_names:
            tables[table] = t.set_column(t.column_names.index(column), column, array)
        else:
            tables[table] = t.append_column(column, array)
        return tables

    return apply


FILES = {name: f"/data/in/{name}.parquet" for name in TABLES}

# (id, edit of the row dicts or of the tables, table, column, rule fragment, example in the message)
BAD = [
    (
        "unknown-status",
        edit("health_checks", 0, status="sideways"),
        "health_checks",
        "status",
        "expect_column_values_to_be_in_set(status in ['up', 'degraded', 'down'])",
        "'sideways'",
    ),
    (
        "negative-latency",
        edit("health_checks", 1, latency_ms=-3.5),
        "health_checks",
        "latency_ms",
        "expect_column_values_to_be_between(latency_ms >= 0)",
        "-3.5",
    ),
    (
        "error-rate-above-1",
        edit("health_checks", 1, error_rate=1.25),
        "health_checks",
        "error_rate",
        "expect_column_values_to_be_between(0 <= error_rate <= 1)",
        "1.25",
    ),
    (
        "unknown-service-in-checks",
        edit("health_checks", 0, service_id="svc-ghost"),
        "health_checks",
        "service_id",
        "expect_column_values_to_be_in_set(service_id in $service_ids)",
        "'svc-ghost'",
    ),
    (
        "unknown-depends-on",
        edit("dependencies", 0, depends_on="saas-ghost"),
        "dependencies",
        "depends_on",
        "expect_column_values_to_be_in_set(depends_on in $service_ids)",
        "'saas-ghost'",
    ),
    (
        "duplicated-key",
        edit("services", 3, service_id="svc-api"),
        "services",
        "service_id",
        "expect_column_values_to_be_unique(service_id unique)",
        "'svc-api'",
    ),
    (
        "duplicated-check",
        append(
            "health_checks",
            {
                "ts": T0,
                "service_id": "svc-api",
                "probe": "http",
                "status": "up",
                "latency_ms": 1.0,
                "error_rate": 0.0,
                "http_code": 200,
            },
        ),
        "health_checks",
        "ts, service_id, probe",
        "expect_compound_columns_to_be_unique((ts, service_id, probe) unique)",
        "'ts': '2026-10-01T00:00:00+00:00'",
    ),
    (
        "incident-ends-before-start",
        edit("incidents", 0, resolved_at=T0 - timedelta(minutes=5)),
        "incidents",
        "resolved_at, started_at",
        "expect_column_pair_values_a_to_be_greater_than_b(resolved_at >= started_at)",
        "2026-09-30T23:55:00",
    ),
    (
        "severity-7",
        edit("incidents", 1, severity=7),
        "incidents",
        "severity",
        "expect_column_values_to_be_in_set(severity in [1, 2, 3, 4])",
        "7",
    ),
    (
        "min-share-1.5",
        edit("workloads", 0, min_share=1.5),
        "workloads",
        "min_share",
        "expect_column_values_to_be_between(0 <= min_share <= 1)",
        "1.5",
    ),
    (
        "negative-warmup",
        edit("workloads", 1, warmup_s=-5.0),
        "workloads",
        "warmup_s",
        "expect_column_values_to_be_between(0 <= warmup_s <= 86400)",
        "-5.0",
    ),
    (
        "unknown-service-in-requires",
        edit("workloads", 1, requires=["saas-pay", "saas-nowhere"]),
        "workloads",
        "requires",
        "expect_column_values_to_be_in_set(requires in $service_ids)",
        "'saas-nowhere'",
    ),
    (
        "self-dependency",
        append("dependencies", {"service_id": "svc-api", "depends_on": "svc-api", "hard": True}),
        "dependencies",
        "service_id, depends_on",
        "expect_select_column_values_to_be_unique_within_record(service_id != depends_on)",
        "'svc-api'",
    ),
    (
        "region-without-capacity",
        edit("services", 0, capacity=0.0),
        "services",
        "capacity",
        "expect_column_values_to_be_between(capacity > 0 where kind == 'region')",
        "0.0",
    ),
    (
        "unknown-site",
        edit("standby_candidates", 0, site_id="site-mars"),
        "standby_candidates",
        "site_id",
        "expect_column_values_to_be_in_set(site_id in $site_ids)",
        "'site-mars'",
    ),
    (
        "negative-risk-cost",
        edit("workloads", 0, risks=[{"depends_on": "region-eu", "cost_per_hour": -1.0}]),
        "workloads",
        "risks.cost_per_hour",
        "expect_column_values_to_be_between(risks.cost_per_hour >= 0)",
        "-1.0",
    ),
]

SCHEMA_BAD = [
    (
        "missing-column",
        replace_column("health_checks", "probe", None),
        "health_checks",
        "probe",
        "schema: missing column",
        "'probe'",
    ),
    (
        "extra-column",
        replace_column("sites", "owner", pa.array(["ops", "it"])),
        "sites",
        "owner",
        "schema: unexpected column",
        "'ops'",
    ),
    (
        "string-in-float-column",
        replace_column("health_checks", "latency_ms", pa.array(["12", "fast", "3", None])),
        "health_checks",
        "latency_ms",
        "schema: type string not castable to double",
        "'fast'",
    ),
    (
        "null-in-non-nullable",
        replace_column("dependencies", "hard", pa.array([True, None, False])),
        "dependencies",
        "hard",
        "schema: null in non-nullable column",
        "'row 1'",
    ),
]


def _raise(tables: dict[str, pa.Table]) -> DataValidationError:
    with pytest.raises(DataValidationError) as info:
        validate_tables(tables, files=FILES)
    return info.value


def _assert_named(err: DataValidationError, table: str, column: str, rule: str, example: str) -> None:
    matching = [v for v in err.violations if v.table == table and v.column == column and v.rule.startswith(rule)]
    assert matching, f"no violation {table}.{column} {rule} in:\n{err}"
    line = next(line for line in str(err).splitlines() if rule in line and f"column {column!r}" in line)
    assert f"table {table!r}" in line and example in line and FILES[table] in line, line


def test_valid_tables_pass_every_rule() -> None:
    report = validate_tables(to_tables(valid_rows()), files=FILES)
    assert report.success and not report.violations
    assert set(report.tables) == set(TABLES)
    assert report.rows_validated == sum(len(r) for r in valid_rows().values())
    assert all(r["success"] for t in report.tables.values() for r in t.results)


@pytest.mark.parametrize(("case", "change", "table", "column", "rule", "example"), BAD, ids=[b[0] for b in BAD])
def test_broken_rule_is_named(case, change, table, column, rule, example) -> None:
    err = _raise(to_tables(change(valid_rows())))
    _assert_named(err, table, column, rule, example)


@pytest.mark.parametrize(
    ("case", "change", "table", "column", "rule", "example"), SCHEMA_BAD, ids=[b[0] for b in SCHEMA_BAD]
)
def test_schema_break_is_named_and_skips_ge(case, change, table, column, rule, example) -> None:
    err = _raise(change(to_tables(valid_rows())))
    _assert_named(err, table, column, rule, example)
    assert all(v.table == table and v.rule.startswith("schema:") for v in err.violations), str(err)


def test_ge_really_ran_with_the_json_suites() -> None:
    rows = valid_rows()
    rows["health_checks"][0]["status"] = "sideways"
    rows["health_checks"][2]["status"] = "sideways"
    rows["health_checks"][3]["status"] = "unknown"
    report = validate_tables(to_tables(rows), raise_on_failure=False)
    results = report.tables["health_checks"].results
    suite_types = [e["type"] for e in load_suite_dict("health_checks")["expectations"]]
    ran = [r["rule"].split("(")[0] for r in results if r["suite"] == "health_checks"]
    assert ran == suite_types
    status = next(r for r in results if r["column"] == "status")
    assert (status["success"], status["unexpected_count"], status["examples"]) == (False, 3, ["sideways", "unknown"])
    assert [v.column for v in report.violations] == ["status"] and report.violations[0].count == 3
    assert not report.success and not report.tables["health_checks"].success and report.tables["services"].success


def test_list_columns_are_checked_element_by_element() -> None:
    rows = valid_rows()
    rows["incidents"][0]["affected"] = ["svc-api", "ghost-1", "ghost-2", "ghost-1"]
    report = validate_tables(to_tables(rows), raise_on_failure=False)
    (v,) = report.violations
    assert (v.table, v.column, v.count, v.examples) == ("incidents", "affected", 3, ["ghost-1", "ghost-2"])
    suites = {r["suite"] for r in report.tables["workloads"].results}
    assert suites == {"schema", "workloads", "workloads.requires", "workloads.risks"}


def test_missing_reference_table_fails_closed() -> None:
    tables = to_tables(valid_rows())
    del tables["sites"]
    report = validate_tables(tables, raise_on_failure=False)
    (v,) = report.violations
    assert (v.table, v.column) == ("standby_candidates", "site_id") and "needs table(s) sites" in v.rule


def test_unknown_table_is_a_schema_violation() -> None:
    err = _raise({"telemetry_extra": pa.table({"x": [1]})})
    assert err.violations[0].rule.startswith("schema: unknown table")


def test_report_is_json_ready() -> None:
    rows = valid_rows()
    rows["incidents"][0]["resolved_at"] = T0 - timedelta(hours=1)
    report = validate_tables(to_tables(rows), files=FILES, raise_on_failure=False)
    assert isinstance(report, ValidationReport)
    data = json.loads(json.dumps(report.as_dict(), allow_nan=False))
    assert data["success"] is False
    assert data["violations"][0]["file"] == FILES["incidents"]
    pair = next(r for r in data["tables"]["incidents"]["results"] if r["column"] == "resolved_at, started_at")
    assert (pair["success"], pair["unexpected_count"]) == (False, 1)
    assert pair["examples"] == [["2026-09-30T23:00:00+00:00", "2026-10-01T00:00:00+00:00"]]


def test_every_table_and_list_column_has_a_suite() -> None:
    for name, schema in TABLES.items():
        assert load_suite_dict(name)["name"] == name
        for field in schema:
            if pa.types.is_list(field.type):
                assert (SUITES_DIR / f"{name}.{field.name}.json").exists()


def test_a_rule_added_to_a_suite_file_is_run(tmp_path, monkeypatch) -> None:
    for path in SUITES_DIR.glob("*.json"):
        (tmp_path / path.name).write_text(path.read_text())
    suite = load_suite_dict("sites")
    suite["expectations"] += [
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "site_id", "regex": "^site-eu"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "no_such_column"}},
    ]
    (tmp_path / "sites.json").write_text(json.dumps(suite))
    monkeypatch.setattr("tasks.validation.ge_suites.SUITES_DIR", tmp_path)
    report = validate_tables(to_tables(valid_rows()), raise_on_failure=False)
    regex, missing = report.violations
    assert (regex.table, regex.column, regex.count, regex.examples) == ("sites", "site_id", 1, ["site-hq"])
    assert regex.rule == "expect_column_values_to_match_regex(site_id matches ^site-eu)"
    assert missing.column == "no_such_column" and missing.count is None
    assert missing.examples == ['Error: The column "no_such_column" in BatchData does not exist.']


def test_validation_is_quiet(capfd) -> None:
    validate_tables(to_tables(valid_rows()))
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")  # no progress bars, no analytics or log noise
