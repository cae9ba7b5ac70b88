"""The backtest's fits read the checks chunk by chunk, drop each mapped chunk's pages, and its past is a
slice that reuses the history's chunk grids: same answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from policies.backtest import history as run
from policies.model.failure_model import fit_failure_model
from policies.model.window_grid import window_grid
from policies.telemetry.mapped import open_mapped, release_batch


@pytest.fixture(scope="module")
def tables(small_sample):
    from policies.telemetry.ingest import conform_tables, load_telemetry

    return conform_tables(load_telemetry(str(small_sample)).tables)


def _filtered(checks: pa.Table, at: pd.Timestamp) -> pa.Table:
    return checks.filter(pc.less(checks.column("ts"), pa.scalar(at.to_pydatetime(), checks.schema.field("ts").type)))


def test_the_past_is_a_slice_with_the_rows_a_filter_keeps(tables) -> None:
    checks = tables["health_checks"]
    assert checks.column("ts").num_chunks >= 2  # one per day file
    start = pd.Timestamp(checks.column("ts")[0].as_py())
    for minutes in (0, 1, 1439, 1440, 1441, 2 * 1440 - 1, 3 * 1440):
        at = start + pd.Timedelta(minutes=minutes)
        past = run.before(checks, at)
        assert past.equals(_filtered(checks, at)), minutes
    shuffled = pa.concat_tables([checks.slice(checks.num_rows // 2), checks.slice(0, checks.num_rows // 2)])
    at = start + pd.Timedelta(minutes=1500)
    assert run.before(shuffled, at).equals(_filtered(shuffled, at))  # out of order: filtered


def test_the_fit_from_chunk_grids_equals_the_scan(tables) -> None:
    checks = pa.Table.from_batches(tables["health_checks"].to_batches(max_chunksize=50_000))
    chunks = run.chunk_grids(checks, 1)
    assert chunks is not None
    grids = chunks[1]
    assert grids is not None and len(grids) == checks.column("ts").num_chunks > 2
    args = (tables["services"], tables["dependencies"], checks, tables["incidents"])
    by_grids = fit_failure_model(*args, window_min=1, hysteresis_windows=2, grids=grids)
    by_scan = fit_failure_model(*args, window_min=1, hysteresis_windows=2)
    assert np.array_equal(by_grids.states, by_scan.states)
    pd.testing.assert_frame_equal(by_grids.per_dependency, by_scan.per_dependency)
    pd.testing.assert_frame_equal(by_grids.co_failure, by_scan.co_failure)


def test_the_past_takes_the_history_grids_of_the_chunks_it_shares(tables) -> None:
    checks = pa.Table.from_batches(tables["health_checks"].to_batches(max_chunksize=50_000))
    known = run.chunk_grids(checks, 1)
    at = pd.Timestamp(checks.column("ts")[0].as_py()) + pd.Timedelta(minutes=1500)
    past = run.before(checks, at)
    assert 0 < past.num_rows < checks.num_rows
    reused = run.chunk_grids(past, 1, known)
    fresh = run.chunk_grids(past, 1)
    assert len(reused[1]) == len(fresh[1]) >= 2
    shared = sum(r is k for r, k in zip(reused[1], known[1]))
    assert shared == len(reused[1]) - (past.num_rows % 50_000 != 0)  # all but a cut last chunk
    for r, f in zip(reused[1], fresh[1], strict=True):
        assert r.window0 == f.window0 and r.services == f.services and np.array_equal(r.worst, f.worst)
    copied = past.combine_chunks()  # same values, other memory: read again
    assert not any(r is k for r, k in zip(run.chunk_grids(copied, 1, known)[1], known[1]))
    by_known = fit_failure_model(
        tables["services"],
        tables["dependencies"],
        past,
        tables["incidents"],
        window_min=1,
        hysteresis_windows=2,
        grids=reused[1],
    )
    by_scan = fit_failure_model(
        tables["services"], tables["dependencies"], past, tables["incidents"], window_min=1, hysteresis_windows=2
    )
    assert np.array_equal(by_known.states, by_scan.states)
    pd.testing.assert_frame_equal(by_known.per_dependency, by_scan.per_dependency)


def _mapping_rss(path) -> int:
    """Resident bytes of this process's mapping(s) of ``path`` (from /proc/self/smaps)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if head and "-" in head[0] and len(head) >= 5 and ":" not in head[0]:
                inside = line.rstrip().endswith(str(path))
            elif inside and head[0] == "Rss:":
                total += int(head[1]) * 1024
    return total


def test_a_mapped_chunk_read_for_its_grid_leaves_no_pages_resident(tmp_path) -> None:
    rows = 1 << 18  # 4 chunks of 256k rows, 2 MB a column: well above a page
    n = 4 * rows
    table = pa.table(
        {
            "ts": pa.array(np.arange(n, dtype="int64") * 250, pa.timestamp("ms", tz="UTC")),
            "service_id": pa.array(np.where(np.arange(n) % 2 == 0, "a", "b")).dictionary_encode(),
            "probe": pa.array(np.where(np.arange(n) % 4 < 2, "p1", "p2")).dictionary_encode(),
            "status": pa.array(np.full(n, "up")).dictionary_encode(),
        }
    )
    path = tmp_path / "day.arrow"
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=rows)
    mapped = open_mapped(path)
    assert mapped.num_rows == n and mapped.column("ts").num_chunks == 4
    first = mapped.to_batches()[0]
    pc.sum(first.column(0).cast(pa.int64()))  # touch one chunk's pages
    assert _mapping_rss(path) >= first.column(0).nbytes
    assert release_batch(first) >= first.column(0).nbytes
    assert _mapping_rss(path) < first.column(0).nbytes // 4
    chunks = run.chunk_grids(mapped, 1)  # reads every chunk, keeps none of their pages
    assert chunks is not None and len(chunks[1]) == 4
    assert _mapping_rss(path) < first.column(0).nbytes // 4
    whole = window_grid(table, 1)
    assert sum(g.rows for g in chunks[1]) == whole.rows == n
    assert mapped.equals(table)  # the dropped pages read back the same
