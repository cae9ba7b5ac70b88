"""The backtest's fits read the checks chunk by chunk, and its past is a slice: same answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from policies.backtest import run
from policies.model.failure_model import fit_failure_model


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
        past = run._before(checks, at)
        assert past.equals(_filtered(checks, at)), minutes
    shuffled = pa.concat_tables([checks.slice(checks.num_rows // 2), checks.slice(0, checks.num_rows // 2)])
    at = start + pd.Timedelta(minutes=1500)
    assert run._before(shuffled, at).equals(_filtered(shuffled, at))  # out of order: filtered


def test_the_fit_from_chunk_grids_equals_the_scan(tables) -> None:
    checks = pa.Table.from_batches(tables["health_checks"].to_batches(max_chunksize=50_000))
    grids = run._chunk_grids(checks, 1)
    assert grids is not None and len(grids) == checks.column("ts").num_chunks > 2
    args = (tables["services"], tables["dependencies"], checks, tables["incidents"])
    by_grids = fit_failure_model(*args, window_min=1, hysteresis_windows=2, grids=grids)
    by_scan = fit_failure_model(*args, window_min=1, hysteresis_windows=2)
    assert np.array_equal(by_grids.states, by_scan.states)
    pd.testing.assert_frame_equal(by_grids.per_dependency, by_scan.per_dependency)
    pd.testing.assert_frame_equal(by_grids.co_failure, by_scan.co_failure)
