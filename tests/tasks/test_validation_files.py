"""Malformed files end in a named rule (file, table, column, rule, example); small breaks are quarantined."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from policies.errors import DataValidationError
from policies.telemetry.ingest import load_telemetry
from tasks.validate import check_telemetry


def _copy(small_sample: Path, tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(small_sample, data)
    return data


def _day(data: Path) -> Path:
    return sorted((data / "health_checks").iterdir())[0]


def _set(path: Path, column: str, values) -> None:
    t = pq.read_table(path)
    pq.write_table(t.set_column(t.column_names.index(column), column, values), path)


CASES = [
    ("empty-file", lambda d: _day(d).write_bytes(b""), "non-empty file"),
    (
        "semicolon-csv",
        lambda d: (
            (d / "services.parquet").unlink()
            or (d / "services.csv").write_text("service_id;kind;tier;capacity;region\nx;internal;1;1;\n")
        ),
        "CSV delimiter ','",
    ),
    (
        "latin1-csv",
        lambda d: (
            (d / "services.parquet").unlink()
            or (d / "services.csv").write_bytes(
                "service_id,kind,tier,capacity,region\ncaf\xe9,internal,1,1,\n".encode("latin-1")
            )
        ),
        "CSV encoded as UTF-8",
    ),
    (
        "naive-timestamps",
        lambda d: _set(_day(d), "ts", pq.read_table(_day(d))["ts"].cast(pa.timestamp("ms"))),
        "timezone-aware",
    ),
    (
        "nan-latency",
        lambda d: _set(_day(d), "latency_ms", pa.array([float("nan")] * pq.read_table(_day(d)).num_rows)),
        "finite number",
    ),
    (
        "inf-error-rate",
        lambda d: _set(_day(d), "error_rate", pa.array([float("inf")] * pq.read_table(_day(d)).num_rows)),
        "finite number",
    ),
]


@pytest.mark.parametrize(("case", "corrupt", "rule"), CASES, ids=[c[0] for c in CASES])
def test_malformed_file_is_named(small_sample: Path, tmp_path: Path, case, corrupt, rule) -> None:
    data = _copy(small_sample, tmp_path)
    corrupt(data)
    with pytest.raises(DataValidationError) as err:
        check_telemetry(load_telemetry(data))
    text = str(err.value)
    assert rule in text and str(data) in text, text


def test_a_few_bad_rows_are_quarantined_and_the_run_goes_on(small_sample: Path, tmp_path: Path) -> None:
    data = _copy(small_sample, tmp_path)
    day = _day(data)
    t = pq.read_table(day)
    latency = t["latency_ms"].to_pylist()
    latency[:3] = [-1.0, -2.0, -3.0]
    _set(day, "latency_ms", pa.array(latency, pa.float64()))
    report, docs = check_telemetry(load_telemetry(data), state_dir=tmp_path / "state", quarantine_max_share=0.001)
    assert report.success
    q = report.quarantine["health_checks"]
    assert q.num_rows == 3 and set(q["_rule"].to_pylist()) == {"expect_column_values_to_be_between(latency_ms >= 0)"}
    assert (
        report.clean["health_checks"].num_rows
        == sum(pq.read_table(p).num_rows for p in (data / "health_checks").iterdir()) - 3
    )
    assert (docs.parent / "quarantine" / "health_checks.parquet").is_file()
    with pytest.raises(DataValidationError, match="quarantine share"):
        check_telemetry(load_telemetry(data), quarantine_max_share=0.0)


def test_duplicates_across_day_files_break_the_series_rule(small_sample: Path, tmp_path: Path) -> None:
    data = _copy(small_sample, tmp_path)
    first, second = sorted((data / "health_checks").iterdir())
    extra = pq.read_table(first).slice(0, 2)
    pq.write_table(pa.concat_tables([pq.read_table(second), extra]), second)
    with pytest.raises(DataValidationError, match="strictly increasing"):
        check_telemetry(load_telemetry(data))


def test_glob_and_file_url_sources_read_the_same(small_sample: Path) -> None:
    a = load_telemetry(small_sample)
    b = load_telemetry(f"{small_sample}/**/*.parquet")
    c = load_telemetry(small_sample.resolve().as_uri())
    assert a.sha256 == b.sha256 == c.sha256
    assert (
        pc.sum(b.tables["health_checks"]["error_rate"]).as_py()
        == pc.sum(a.tables["health_checks"]["error_rate"]).as_py()
    )
