"""Data lakes as they are: Hive-partitioned tables, local or behind fsspec, CSV or Parquet, incremental."""

from __future__ import annotations

import shutil
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from policies.errors import DataValidationError
from policies.telemetry.ingest import conform_tables, load_telemetry
from policies.telemetry.watermark import commit_ingest, ingest_incremental


def to_hive(flat: Path, out: Path, *, by_service: bool = False, csv: bool = False) -> Path:
    """The flat sample rewritten as a data lake writes it: health_checks/[service_id=S/]date=D/part-0.*."""
    shutil.copytree(flat, out, ignore=shutil.ignore_patterns("health_checks"))
    checks = pq.read_table(flat / "health_checks")
    day = pc.strftime(checks["ts"], format="%Y-%m-%d")
    services = sorted(set(checks["service_id"].to_pylist())) if by_service else [None]
    for d in sorted(set(day.to_pylist())):
        for s in services:
            mask = pc.equal(day, d) if s is None else pc.and_(pc.equal(day, d), pc.equal(checks["service_id"], s))
            part = checks.filter(mask)
            folder = out / "health_checks" / (f"service_id={s}" if s else "") / f"date={d}"
            folder.mkdir(parents=True)
            if s is not None:
                part = part.drop_columns(["service_id"])  # the folder holds it, as a data lake writes it
            if csv:
                pacsv.write_csv(part, folder / "part-0.csv")
            else:
                pq.write_table(part, folder / "part-0.parquet")
    (out / "health_checks" / "_SUCCESS").write_text("")
    return out


def _sorted(t: pa.Table) -> pa.Table:
    return t.sort_by([("ts", "ascending"), ("service_id", "ascending"), ("probe", "ascending")])


@pytest.mark.parametrize(("by_service", "csv"), [(False, False), (True, False), (True, True)])
def test_hive_layouts_read_as_the_flat_table(small_sample: Path, tmp_path: Path, by_service: bool, csv: bool) -> None:
    hive = to_hive(small_sample, tmp_path / "lake", by_service=by_service, csv=csv)
    flat = conform_tables(load_telemetry(small_sample).tables)["health_checks"]
    lake = load_telemetry(hive)
    assert all("/date=" in f.key for f in lake.files["health_checks"])
    got = conform_tables(lake.tables)["health_checks"]
    assert got.schema == flat.schema and _sorted(got).equals(_sorted(flat))


def test_hive_layout_behind_an_fsspec_filesystem(small_sample: Path, tmp_path: Path) -> None:
    hive = to_hive(small_sample, tmp_path / "lake", by_service=True)
    fs = fsspec.filesystem("memory")
    for path in hive.rglob("*"):
        if path.is_file():
            fs.pipe(f"/lake-{tmp_path.name}/{path.relative_to(hive).as_posix()}", path.read_bytes())
    lake = load_telemetry(f"memory:///lake-{tmp_path.name}")
    flat = conform_tables(load_telemetry(small_sample).tables)["health_checks"]
    assert _sorted(conform_tables(lake.tables)["health_checks"]).equals(_sorted(flat))


def test_partition_values_are_typed_and_checked(small_sample: Path, tmp_path: Path) -> None:
    hive = to_hive(small_sample, tmp_path / "lake", by_service=True)
    first = sorted((hive / "health_checks").glob("service_id=*/date=*/part-0.parquet"))[0]
    wrong_day = first.parent.parent / "date=2031-01-01"
    first.parent.rename(wrong_day)
    with pytest.raises(DataValidationError, match=r"ts inside its partition date=2031-01-01") as err:
        load_telemetry(hive)
    assert "date=2031-01-01" in (err.value.violations[0].file or "")
    wrong_day.rename(first.parent)
    table = pq.read_table(first)
    pq.write_table(table.append_column("service_id", pa.array(["other"] * table.num_rows)), first)
    with pytest.raises(DataValidationError, match="service_id equal to its partition folder"):
        load_telemetry(hive)


def test_incremental_ingest_reads_only_new_partitions(small_sample: Path, tmp_path: Path) -> None:
    hive = to_hive(small_sample, tmp_path / "lake")
    days = sorted((hive / "health_checks").glob("date=*"))
    held = tmp_path / days[-1].name
    days[-1].rename(held)  # the last day arrives later
    first = ingest_incremental(hive, tmp_path / "state")
    assert first.extra["ingest"]["read"] > 0
    commit_ingest(first)
    held.rename(hive / "health_checks" / held.name)
    second = ingest_incremental(hive, tmp_path / "state")
    assert second.extra["ingest"]["read"] == 1  # just the new partition's file
    assert second.rows["health_checks"] == load_telemetry(hive).rows["health_checks"]


@pytest.mark.parametrize("csv", [False, True])
def test_every_layout_opens_as_one_pyarrow_dataset(small_sample: Path, tmp_path: Path, csv: bool) -> None:
    import pyarrow.dataset as ds

    from policies.telemetry.dataset import table_dataset

    flat = conform_tables(load_telemetry(small_sample).tables)["health_checks"]
    hive = to_hive(small_sample, tmp_path / "lake", by_service=True, csv=csv)
    lake = table_dataset(hive, "health_checks")
    assert lake.schema.field("service_id").type == pa.string() and lake.count_rows() == flat.num_rows
    one = lake.to_table(filter=ds.field("service_id") == flat["service_id"][0].as_py())
    assert 0 < one.num_rows < flat.num_rows and set(one["service_id"].to_pylist()) == {flat["service_id"][0].as_py()}
    assert table_dataset(small_sample, "health_checks").count_rows() == flat.num_rows  # flat day files
    assert table_dataset(small_sample, "services").count_rows() > 0  # a single file
    (tmp_path / "only").mkdir()
    shutil.copy(small_sample / "services.parquet", tmp_path / "only" / "services.parquet")
    with pytest.raises(DataValidationError, match="table present"):
        table_dataset(tmp_path / "only", "health_checks")
