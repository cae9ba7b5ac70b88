from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from policies.errors import DataValidationError
from policies.schema import TABLES
from policies.telemetry.ingest import conform_tables, load_telemetry, locate_tables, snapshot_id


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_reads_every_table_and_never_touches_inputs(small_sample: Path) -> None:
    before = _tree_digest(small_sample)
    tel = load_telemetry(small_sample)
    assert set(tel.tables) == set(TABLES)
    assert tel.files["health_checks"][0].key.startswith("health_checks/")
    assert len(tel.files["health_checks"]) == 2  # one file per day
    assert tel.rows["health_checks"] == 2 * 1440 * 2 * tel.rows["services"]
    assert _tree_digest(small_sample) == before


def test_snapshot_hash_is_content_addressed(small_sample: Path, tmp_path: Path) -> None:
    a = load_telemetry(small_sample)
    copy = tmp_path / "copy"
    shutil.copytree(small_sample, copy)
    b = load_telemetry(copy)
    assert a.sha256 == b.sha256 and snapshot_id(a.sha256) == snapshot_id(b.sha256)
    services = pq.read_table(copy / "services.parquet")
    pq.write_table(services.slice(0, services.num_rows - 1), copy / "services.parquet")
    c = load_telemetry(copy)
    assert c.sha256["services"] != a.sha256["services"]
    assert c.sha256["health_checks"] == a.sha256["health_checks"]


def test_csv_tables_are_read_and_conform(small_sample: Path, tmp_path: Path) -> None:
    data = tmp_path / "csvdata"
    shutil.copytree(small_sample, data)
    services = pq.read_table(data / "services.parquet")
    (data / "services.parquet").unlink()
    pacsv.write_csv(services, data / "services.csv")
    tel = load_telemetry(data)
    assert [f.path for f in tel.files["services"]] == [str(data / "services.csv")]
    conformed = conform_tables({"services": tel.tables["services"]})["services"]
    assert conformed.schema.equals(TABLES["services"]) or conformed.schema.remove_metadata().equals(TABLES["services"])
    assert conformed.column("service_id").to_pylist() == services.column("service_id").to_pylist()


def test_missing_required_table_names_it(small_sample: Path, tmp_path: Path) -> None:
    data = tmp_path / "partial"
    shutil.copytree(small_sample, data)
    (data / "workloads.parquet").unlink()
    with pytest.raises(DataValidationError, match=r"workloads.*required table present"):
        load_telemetry(data)


def test_truncated_parquet_names_the_file(small_sample: Path, tmp_path: Path) -> None:
    data = tmp_path / "trunc"
    shutil.copytree(small_sample, data)
    target = data / "dependencies.parquet"
    target.write_bytes(target.read_bytes()[:100])
    with pytest.raises(DataValidationError) as err:
        load_telemetry(data)
    assert "dependencies" in str(err.value) and "dependencies.parquet" in str(err.value)


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match="source folder exists"):
        load_telemetry(tmp_path / "nowhere")


def test_locate_ignores_hidden_and_foreign_files(tmp_path: Path) -> None:
    (tmp_path / "health_checks").mkdir()
    pq.write_table(pa.table({"x": [1]}), tmp_path / "health_checks" / "2026-10-01.parquet")
    (tmp_path / "health_checks" / ".partial.parquet").write_bytes(b"junk")
    (tmp_path / "notes.txt").write_text("hi")
    found = locate_tables(tmp_path)
    assert list(found) == ["health_checks"]
    assert [p.key for p in found["health_checks"]] == ["health_checks/2026-10-01.parquet"]
