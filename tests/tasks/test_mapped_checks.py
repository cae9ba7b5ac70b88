"""The mapped health checks (day files as memory-mapped Arrow files) give what the in-memory path gave.

Ingest, validation and the failure model run on a small fleet both ways; the tables, the
validation report and the fitted model (down to the health file's bytes) must be equal.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from flows.params import model_params
from flows.settings import Settings
from policies.model.failure_model import fit_failure_model
from policies.telemetry.ingest import conform_tables
from policies.telemetry.mapped import mapped_bytes, open_mapped, release_pages
from policies.telemetry.watermark import commit_ingest, ingest_incremental
from tasks.estimate import health_check_grids, health_file
from tasks.validate import check_telemetry


def _run(source: Path, state: Path, *, mapped: bool):
    telemetry = ingest_incremental(source, state, mapped=mapped)
    report, _ = check_telemetry(telemetry)
    tables = conform_tables(report.clean)
    files = [(p.sha256, p.table) for p in telemetry.parts["health_checks"]]
    params = model_params(Settings())
    grids = health_check_grids(files, window_min=params["window_min"], cache_dir=state / "grids")
    checks = tables["health_checks"]
    model = fit_failure_model(
        tables["services"], tables["dependencies"], checks, tables["incidents"], **params, grids=grids
    )
    return telemetry, report, tables, model


@pytest.fixture(scope="module")
def both(small_sample: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("mapped")
    return _run(small_sample, root / "held", mapped=False), _run(small_sample, root / "mapped", mapped=True)


def test_mapped_parts_are_the_parsed_parts(both) -> None:
    (held, *_), (mapped, *_) = both
    assert [p.sha256 for p in mapped.parts["health_checks"]] == [p.sha256 for p in held.parts["health_checks"]]
    for a, b in zip(held.parts["health_checks"], mapped.parts["health_checks"], strict=True):
        assert b.table.equals(a.table)
        assert [c.num_chunks for c in b.table.columns] == [c.num_chunks for c in a.table.columns]
    assert mapped.sha256 == held.sha256 and mapped.rows == held.rows
    store = Path(mapped.extra["store"]) / "arrow"
    assert sorted(f.stem for f in store.glob("*.arrow")) == sorted(p.sha256 for p in mapped.parts["health_checks"])
    assert not (Path(held.extra["store"]) / "arrow").exists()


def test_mapped_tables_are_not_held_by_arrow(both) -> None:
    """A mapped day file costs Arrow's memory pool nothing: its buffers point into the file's mapping."""
    (held, *_), (mapped, *_) = both
    assert mapped_bytes() >= sum(p.table.nbytes for p in mapped.parts["health_checks"]) > 0
    part = held.parts["health_checks"][0]
    path = Path(mapped.extra["store"]) / "arrow" / f"{part.sha256}.arrow"
    before = pa.total_allocated_bytes()
    table = open_mapped(path)
    assert pa.total_allocated_bytes() - before < table.nbytes / 100
    assert table.equals(part.table)


def test_same_validation_tables_and_model(both) -> None:
    (_, r_held, t_held, m_held), (_, r_mapped, t_mapped, m_mapped) = both
    assert r_mapped.success and r_held.success
    assert r_mapped.rows_validated == r_held.rows_validated
    assert r_mapped.as_dict() == r_held.as_dict()
    assert t_mapped.keys() == t_held.keys()
    for name in t_held:
        assert t_mapped[name].equals(t_held[name]), name
    assert m_mapped.per_dependency.equals(m_held.per_dependency)
    assert health_file(m_mapped, horizon_min=60) == health_file(m_held, horizon_min=60)


def test_released_pages_read_back_the_same(both) -> None:
    (held, *_), (mapped, *_) = both
    before = [p.table for p in mapped.parts["health_checks"]]
    assert release_pages() >= sum(t.nbytes for t in before)
    for table, part in zip(before, held.parts["health_checks"], strict=True):
        assert table.equals(part.table)


def test_commit_prunes_mapped_files_of_parts_no_longer_named(both) -> None:
    _, (mapped, *_) = both
    store = Path(mapped.extra["store"]) / "arrow"
    stale = store / ("0" * 64 + ".arrow")
    stale.write_bytes(b"old")
    mapped.extra["started_s"] = stale.stat().st_mtime + 1
    commit_ingest(mapped)
    assert not stale.exists()
    assert sorted(f.stem for f in store.glob("*.arrow")) == sorted(p.sha256 for p in mapped.parts["health_checks"])


def test_open_mapped_refuses_an_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "x.arrow"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        open_mapped(empty)


def test_table_rules_on_mapped_files_keep_no_pages_and_give_the_held_answers(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from tasks.validation.table import table_rules
    from tests.policies.test_backtest_memory import _mapping_rss

    n = 1 << 19  # two day files of 512k rows, 4 MB of timestamps each, one after the other
    parts, paths = [], []
    for day in range(2):
        ts = (np.arange(n, dtype="int64") // 2 + day * (n // 2)) * 60_000
        table = pa.table(
            {
                "ts": pa.array(ts, pa.timestamp("ms", tz="UTC")),
                "service_id": pa.array(np.where(np.arange(n) % 2 == 0, "a", "b")),
                "probe": pa.array(np.full(n, "p1")),
            }
        )
        path = tmp_path / f"day{day}.arrow"
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=1 << 17)
        parts.append(table)
        paths.append(path)
    held = pa.concat_tables(parts)
    mapped = pa.concat_tables([open_mapped(p) for p in paths])
    files = [(str(p), n) for p in paths]
    for days, fresh in ((40, True), (1, False)):  # the newest check is 364.1 days after the epoch
        now = datetime(1971, 1, 10, tzinfo=UTC)
        want = table_rules("health_checks", held, files, now, 60.0 * 24 * days)
        got = table_rules("health_checks", mapped, files, now, 60.0 * 24 * days)
        assert got == want and want[0]["success"] and want[1]["success"] is fresh
        assert sum(_mapping_rss(p) for p in paths) < mapped.column("ts").nbytes // 8
