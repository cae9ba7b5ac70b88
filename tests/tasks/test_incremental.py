"""Validate only what is new: parts known by their bytes and the reference tables they were checked against."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from policies.errors import DataValidationError
from policies.telemetry.incidents import append_incident_day
from tasks.ingest import read_telemetry
from tasks.validation.incremental import validate_new_telemetry


@pytest.fixture()
def data(small_sample: Path, tmp_path: Path) -> Path:
    out = tmp_path / "data"
    shutil.copytree(small_sample, out)
    return out


def _validated(data: Path, state: Path) -> dict[str, int]:
    report, _, tables, pieces = validate_new_telemetry(read_telemetry(str(data)), state_dir=state)
    assert report.success
    hc = pieces["health_checks"]  # the pieces, in order, are the table; only new rows lack a file sha256
    assert pa.concat_tables([t for _, t in hc]).equals(tables["health_checks"])
    assert all(sha for sha, _ in hc[:-1]) and (hc[-1][0] is None) == ("health_checks" in report.clean)
    return {name: t.rows for name, t in report.tables.items()} | {
        "_total_health_checks": tables["health_checks"].num_rows
    }


def test_second_run_validates_only_the_new_day_and_the_incidents(prefect_harness, data: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = _validated(data, state)
    assert {"services", "workloads", "health_checks", "incidents"} <= set(first)
    assert _validated(data, state) == {"_total_health_checks": first["_total_health_checks"]}  # nothing new
    append_incident_day(data, dependency="saas-maps", incident_id="INC-1", outage_min=60)
    again = _validated(data, state)
    new_day = sorted((data / "health_checks").glob("*.parquet"))[-1]
    assert set(again) - {"_total_health_checks"} == {"health_checks", "incidents"}  # references: ids only
    assert again["health_checks"] == pq.read_metadata(new_day).num_rows < first["health_checks"]
    assert again["_total_health_checks"] == first["_total_health_checks"] + again["health_checks"]


def test_a_changed_services_table_revalidates_the_parts_that_refer_to_it(
    prefect_harness, data: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    first = _validated(data, state)
    services = pq.read_table(data / "services.parquet")
    gone = services["service_id"][0].as_py()
    pq.write_table(services.filter(pc.not_equal(services["service_id"], gone)), data / "services.parquet")
    # the known day files refer to the removed service: they are checked again, and fail on that reference
    with pytest.raises(DataValidationError) as err:
        validate_new_telemetry(read_telemetry(str(data)), state_dir=state)
    assert gone in str(err.value) and "health_checks" in str(err.value)
    assert first["health_checks"] > 0


def test_a_failed_run_remembers_nothing(prefect_harness, data: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    checks = sorted((data / "health_checks").glob("*.parquet"))[0]
    table = pq.read_table(checks)
    bad = table.set_column(
        table.schema.get_field_index("latency_ms"),
        "latency_ms",
        pa.array([-1.0] * table.num_rows, table.schema.field("latency_ms").type),
    )
    pq.write_table(bad, checks)
    with pytest.raises(DataValidationError):
        validate_new_telemetry(read_telemetry(str(data)), state_dir=state)
    pq.write_table(table, checks)
    assert _validated(data, state)["health_checks"] == sum(
        pq.read_metadata(p).num_rows for p in (data / "health_checks").glob("*.parquet")
    )
