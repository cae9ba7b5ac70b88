"""Warning-level rules: a service down or unchecked too long, a history with too few outages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from policies.telemetry import history_checks
from policies.telemetry.history_checks import history_warnings

DEFAULTS = {"max_down_h": 168.0, "max_silent_h": 72.0, "min_outages": 5}

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def _checks(rows: dict[str, list[tuple[float, str]]]) -> pa.Table:
    flat = [(T0 + timedelta(hours=h), s, st) for s, series in rows.items() for h, st in series]
    return pa.table(
        {
            "ts": pa.array([r[0] for r in flat], pa.timestamp("ms", tz="UTC")),
            "service_id": [r[1] for r in flat],
            "status": [r[2] for r in flat],
        }
    )


def _hourly(start: float, end: float, status: str = "up") -> list[tuple[float, str]]:
    return [(float(h), status) for h in range(int(start), int(end))]


def test_down_until_the_end_and_silence_are_probably_retired() -> None:
    checks = _checks(
        {
            "shop": _hourly(0, 500),
            "old": _hourly(0, 100) + _hourly(100, 500, "down"),  # 400 h down until the end
            "api": _hourly(0, 100) + _hourly(300, 500),  # 200 h without a check in the middle
            "gone": _hourly(0, 50),  # never checked after 50 h
        }
    )
    by = {(w["rule"], w["service_id"]): w["message"] for w in history_warnings(checks, max_down_h=168, max_silent_h=72)}
    assert "probably retired or misconfigured" in by[("down too long", "old")]
    assert "until the data ends" in by[("down too long", "old")]
    assert "monitoring paused" in by[("not checked too long", "api")]
    assert "after its last check" in by[("not checked too long", "gone")]
    assert "only 1 outage(s) in 4 service(s)" in by[("too few outages", None)]
    assert not any(s == "shop" for _, s in by)


def test_a_lively_history_gives_no_warning() -> None:
    series = []
    for day in range(20):  # one two-hour outage a day
        series += _hourly(day * 24, day * 24 + 22) + _hourly(day * 24 + 22, day * 24 + 24, "down")
    assert history_warnings(_checks({"shop": series, "api": _hourly(0, 480)})) == []
    short = history_warnings(_checks({"shop": series}), max_down_h=1)
    assert len(short) == 19  # the last run is cut by the end after one hour: not longer than 1 h
    assert all(w["rule"] == "down too long" for w in short)


def _history() -> pa.Table:
    rng = np.random.default_rng(3)
    rows: dict[str, list[tuple[float, str]]] = {}
    for k in range(6):
        series = []
        for h in range(600):
            if rng.random() < 0.05 and k != 0:
                continue  # missing checks: gaps of various widths
            series.append((float(h), "down" if (h // 97 + k) % 4 == 0 or rng.random() < 0.02 else "up"))
        rows[f"svc-{k}"] = series
    rows["svc-2"] = [r for r in rows["svc-2"] if not 200 <= r[0] < 300]  # 100 h silent
    rows["svc-3"] = [(h, "down" if h >= 380 else s) for h, s in rows["svc-3"]]  # down until the end
    rows["svc-4"] = [(h, "down" if 100 <= h < 290 else s) for h, s in rows["svc-4"]]  # a long closed run
    table = _checks(rows)
    order = pc.sort_indices(table, [("ts", "ascending"), ("service_id", "ascending")])
    return table.take(order)


@pytest.mark.parametrize("chunk_rows", [13, 500, 10_000])
def test_chunks_in_time_order_give_the_whole_table_answers(chunk_rows: int) -> None:
    """Day files arrive as chunks: the running state per service gives what one sort gives."""
    table = _history()
    chunked = pa.Table.from_batches(table.to_batches(max_chunksize=chunk_rows))
    assert chunked.column("ts").num_chunks == -(-table.num_rows // chunk_rows)
    for kwargs in ({}, {"max_down_h": 50, "max_silent_h": 20, "min_outages": 10_000}):
        expected = history_checks._whole_table(table, **{**DEFAULTS, **kwargs})
        assert history_warnings(chunked, **kwargs) == expected
    rules = {w["rule"] for w in history_warnings(chunked, max_down_h=50, max_silent_h=20, min_outages=10_000)}
    assert rules == {"down too long", "not checked too long", "too few outages"}  # every branch exercised


def test_chunks_out_of_time_order_fall_back_to_sorting() -> None:
    table = _history()
    half = table.num_rows // 2
    swapped = pa.concat_tables([table.slice(half), table.slice(0, half)])  # later day file first
    assert history_checks._streamed(swapped, **DEFAULTS) is None
    assert history_warnings(swapped, max_down_h=50) == history_checks._whole_table(
        table, **{**DEFAULTS, "max_down_h": 50}
    )


def test_a_null_service_id_is_read_as_the_whole_table_reads_it() -> None:
    table = _history()
    ids = table.column("service_id").to_pylist()
    ids[5] = None
    broken = table.set_column(1, "service_id", pa.array(ids, pa.string()))
    assert history_checks._streamed(broken, **DEFAULTS) is None
    assert history_warnings(broken, max_down_h=50) == history_checks._whole_table(
        broken, **{**DEFAULTS, "max_down_h": 50}
    )


def test_many_services_per_chunk_give_the_whole_table_answers() -> None:
    """Chunks holding many services, runs open across chunk ends, first checks late: one sort's answers."""
    rng = np.random.default_rng(11)
    rows: dict[str, list[tuple[float, str]]] = {}
    for k in range(40):
        begin = int(rng.integers(0, 50))
        down = rng.random(400) < (0.6 if k % 7 == 0 else 0.08)
        rows[f"svc-{k:02d}"] = [
            (float(h), "down" if down[h] else "up") for h in range(begin, 400) if rng.random() > 0.1 or k % 5 == 0
        ]
    table = _checks(rows)
    table = table.take(pc.sort_indices(table, [("ts", "ascending"), ("service_id", "ascending")]))
    for chunk_rows in (37, 1000):
        chunked = pa.Table.from_batches(table.to_batches(max_chunksize=chunk_rows))
        for kwargs in ({"max_down_h": 3, "max_silent_h": 2, "min_outages": 10_000}, DEFAULTS):
            expected = history_checks._whole_table(table, **kwargs)
            assert history_checks._streamed(chunked, **kwargs) == expected
    tight = history_checks._streamed(chunked, max_down_h=3, max_silent_h=2, min_outages=10_000)
    assert {"down too long", "not checked too long", "too few outages"} <= {w["rule"] for w in tight}
