"""Bad rows: every row rule quarantines (NaN and inf too), and a duplicated key is never dropped silently."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from policies.errors import DataValidationError
from policies.telemetry.watermark import ingest_incremental
from tasks.validation.suite import validate_tables
from tests.tasks.test_validation import FILES, to_tables, valid_rows


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [
        ("latency_ms", float("nan"), "finite number"),
        ("latency_ms", float("inf"), "finite number"),
        ("error_rate", float("-inf"), "finite number"),
        ("latency_ms", -5.0, "expect_column_values_to_be_between"),
    ],
    ids=["nan", "inf", "minus-inf", "negative"],
)
def test_a_bad_row_under_the_share_is_quarantined_and_the_rest_is_kept(column, value, rule) -> None:
    rows = valid_rows()
    rows["health_checks"][0][column] = value
    report = validate_tables(to_tables(rows), files=FILES, quarantine_max_share=0.5)
    assert report.success, report.violations
    clean = report.clean["health_checks"]  # the KeyError of issue 16: the clean table was missing
    assert clean.num_rows == len(rows["health_checks"]) - 1
    assert pc.all(pc.is_finite(pc.drop_null(clean[column]))).as_py()
    q = report.quarantine["health_checks"]
    assert q.num_rows == 1 and rule in q["_rule"][0].as_py()
    assert report.tables["health_checks"].quarantined == 1


def test_bad_rows_over_the_share_fail_with_the_rule_named() -> None:
    rows = valid_rows()
    for r in rows["health_checks"][:2]:
        r["latency_ms"] = float("nan")
    with pytest.raises(DataValidationError) as err:
        validate_tables(to_tables(rows), files=FILES, quarantine_max_share=0.25)
    assert "finite number" in str(err.value) and "latency_ms" in str(err.value)


def test_a_duplicated_key_in_a_small_table_is_a_named_rule() -> None:
    rows = valid_rows()
    rows["services"] = rows["services"] + rows["services"]  # every row twice
    with pytest.raises(DataValidationError) as err:
        validate_tables(to_tables(rows), files=FILES, quarantine_max_share=0.5)
    hits = [v for v in err.value.violations if v.table == "services" and v.column == "service_id"]
    assert hits and "unique" in hits[0].rule, str(err.value)


def test_ingest_keeps_duplicated_services_rows_for_the_uniqueness_rule(small_sample: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(small_sample, data)
    services = pq.read_table(data / "services.parquet")
    pq.write_table(pa.concat_tables([services, services]), data / "services.parquet")
    before = (data / "services.parquet").read_bytes()
    telemetry = ingest_incremental(data, tmp_path / "state")
    assert telemetry.rows["services"] == 2 * services.num_rows
    assert telemetry.extra["ingest"]["duplicates_dropped"] == 0
    assert (data / "services.parquet").read_bytes() == before
