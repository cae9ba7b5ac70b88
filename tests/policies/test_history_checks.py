"""Warning-level rules: a service down or unchecked too long, a history with too few outages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa

from policies.telemetry.history_checks import history_warnings

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
