"""Incremental ingest: watermarks, the lateness window, exact duplicates, a content-addressed snapshot."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from policies.telemetry.ingest import load_telemetry, snapshot_id
from policies.telemetry.watermark import (
    commit_ingest,
    drop_exact_duplicates,
    ingest_incremental,
    ingest_store,
    prune_parts,
)


@pytest.fixture
def one_day(small_sample: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """A copy of the sample holding only its first day; the second day file set aside."""
    data = tmp_path / "data"
    shutil.copytree(small_sample, data)
    second = sorted((data / "health_checks").iterdir())[1]
    aside = tmp_path / second.name
    shutil.move(second, aside)
    return data, aside, tmp_path / "state"


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_reingesting_the_same_files_changes_nothing(one_day) -> None:
    data, _, state = one_day
    first = ingest_incremental(data, state)
    assert first.extra["ingest"]["read"] == 7 and commit_ingest(first)
    store = ingest_store(state, str(data.absolute()))
    before = _tree(store)
    again = ingest_incremental(data, state)
    assert again.extra["ingest"] == {
        "reused": 7,
        "read": 0,
        "merged": 0,
        "late_rows_dropped": 0,
        "duplicates_dropped": 0,
    }
    assert snapshot_id(again.sha256) == snapshot_id(first.sha256)
    assert commit_ingest(again) is False  # no new snapshot
    assert _tree(store) == before
    assert len(list((store / "snapshots").iterdir())) == 1
    # The identity is the data's, not the path's or the method's: a full read agrees.
    assert load_telemetry(data).sha256 == first.sha256


def test_an_unchanged_day_comes_from_its_mapped_file_without_parsing(one_day, monkeypatch) -> None:
    """A re-solve's ingest: the health-check parts are the mapped Arrow files, not parsed again;
    same values and chunks. A missing mapped file falls back to parsing the stored part."""
    import policies.telemetry.watermark as watermark

    data, _, state = one_day
    first = ingest_incremental(data, state)
    commit_ingest(first)
    parsed: list[str] = []
    parse = watermark.parse_bytes
    monkeypatch.setattr(watermark, "parse_bytes", lambda f, b: parsed.append(f.table) or parse(f, b))
    again = ingest_incremental(data, state)
    assert parsed and "health_checks" not in parsed  # the small tables are still parsed
    assert again.extra["ingest"]["reused"] == 7 and again.sha256 == first.sha256

    def chunks(t):
        return [(c.num_rows, c.to_pylist()) for c in t.tables["health_checks"].to_batches()]

    assert chunks(again) == chunks(first)
    store = ingest_store(state, str(data.absolute()))
    for mapped in (store / "arrow").iterdir():
        mapped.unlink()  # pruned by a concurrent run, say (the open mappings stay valid)
    parsed.clear()
    fallback = ingest_incremental(data, state)
    assert "health_checks" in parsed and chunks(fallback) == chunks(first)
    assert len(list((store / "arrow").iterdir())) == len(first.parts["health_checks"])


def test_a_new_day_is_the_only_file_read_and_the_snapshot_is_the_union(one_day) -> None:
    data, aside, state = one_day
    first = ingest_incremental(data, state)
    commit_ingest(first)
    shutil.copy(aside, data / "health_checks" / aside.name)
    second = ingest_incremental(data, state)
    assert second.extra["ingest"]["read"] == 1 and second.extra["ingest"]["reused"] == 7
    assert second.rows["health_checks"] == first.rows["health_checks"] + pq.read_metadata(aside).num_rows
    assert {k: v for k, v in second.sha256.items() if k != "health_checks"} == {
        k: v for k, v in first.sha256.items() if k != "health_checks"
    }
    assert second.sha256 == load_telemetry(data).sha256  # old + new = what a full read sees
    assert commit_ingest(second)
    snapshots = list((Path(second.extra["store"]) / "snapshots").iterdir())
    assert len(snapshots) == 2


def _rows_at(template: pa.Table, ts, probe: str, n: int) -> pa.Table:
    rows = template.slice(0, n)
    return rows.set_column(0, rows.schema.field("ts"), pa.array([ts] * n, rows.schema.field("ts").type)).set_column(
        2, rows.schema.field("probe"), pa.array([probe] * n, pa.string())
    )


def test_changed_day_file_takes_late_rows_inside_the_window_only(one_day) -> None:
    data, aside, state = one_day
    shutil.copy(aside, data / "health_checks" / aside.name)
    base = ingest_incremental(data, state, lateness_min=60)
    commit_ingest(base)
    day = pq.read_table(data / "health_checks" / aside.name)
    newest = pc.max(day["ts"]).as_py()
    fresh = _rows_at(day, newest + timedelta(minutes=1), day["probe"][0].as_py(), 5)  # after the watermark
    late = _rows_at(day, newest - timedelta(minutes=30), "probe-late", 3)  # late, inside the 60 min window
    too_late = _rows_at(day, newest - timedelta(hours=3), "probe-too-late", 4)  # behind the window
    duplicate = day.slice(day.num_rows - 1, 1)  # an exact copy of a row already there
    pq.write_table(pa.concat_tables([day, fresh, late, too_late, duplicate]), data / "health_checks" / aside.name)

    grown = ingest_incremental(data, state, lateness_min=60)
    counts = grown.extra["ingest"]
    assert (counts["read"], counts["merged"], counts["late_rows_dropped"], counts["duplicates_dropped"]) == (1, 1, 4, 1)
    assert grown.rows["health_checks"] == base.rows["health_checks"] + 5 + 3
    probes = set(grown.tables["health_checks"]["probe"].to_pylist())
    assert "probe-late" in probes and "probe-too-late" not in probes
    assert grown.sha256["health_checks"] != base.sha256["health_checks"]
    assert commit_ingest(grown)
    again = ingest_incremental(data, state, lateness_min=60)  # the merged part is reused as it was
    assert snapshot_id(again.sha256) == snapshot_id(grown.sha256) and again.extra["ingest"]["read"] == 0
    assert again.extra["ingest"]["duplicates_dropped"] == 1  # a reused part that had duplicates is cleaned again
    assert again.rows["health_checks"] == grown.rows["health_checks"]


def test_nothing_moves_until_the_snapshot_is_committed(one_day) -> None:
    data, _, state = one_day
    ingest_incremental(data, state)  # e.g. validation failed afterwards: no commit
    store = ingest_store(state, str(data.absolute()))
    assert not (store / "state.json").exists() and not (store / "snapshots").exists()
    assert ingest_incremental(data, state).extra["ingest"]["read"] == 7


def test_a_changed_small_table_replaces_its_old_version(one_day) -> None:
    data, _, state = one_day
    commit_ingest(ingest_incremental(data, state))
    services = pq.read_table(data / "services.parquet")
    pq.write_table(services.slice(0, services.num_rows - 1), data / "services.parquet")
    after = ingest_incremental(data, state)
    assert after.rows["services"] == services.num_rows - 1 and after.extra["ingest"]["read"] == 1


def test_drop_exact_duplicates_keeps_first_rows_and_near_duplicates() -> None:
    t = pa.table(
        {
            "a": [1, 2, 1, 1, None, None],
            "b": ["x", "y", "x", "z", None, None],
            "c": [0.5, float("nan"), 0.5, 0.5, 1.0, 1.0],
        }
    )
    out, dropped = drop_exact_duplicates(t)
    assert dropped == 2 and out.to_pydict()["b"] == ["x", "y", "z", None]
    nested = pa.table({"k": ["a", "a", "b"], "l": [["x"], ["x"], ["x"]]})
    out, dropped = drop_exact_duplicates(nested)
    assert dropped == 1 and out["k"].to_pylist() == ["a", "b"]
    assert drop_exact_duplicates(pa.table({"a": [1, 2, 3]}))[1] == 0


def test_committing_prunes_the_parts_the_state_no_longer_names(one_day) -> None:
    data, aside, state = one_day
    commit_ingest(ingest_incremental(data, state))
    store = ingest_store(state, str(data.absolute()))
    first_parts = {p.name for p in (store / "parts").iterdir()}
    services = pq.read_table(data / "services.parquet")  # a small table edited in place: replaced
    pq.write_table(services.slice(0, services.num_rows - 1), data / "services.parquet")
    day = sorted((data / "health_checks").iterdir())[0]  # a day file that grew: merged into a new part
    checks = pq.read_table(day)
    later = checks.slice(0, 1).set_column(
        0,
        checks.schema.field("ts"),
        pa.array([pc.max(checks["ts"]).as_py() + timedelta(minutes=5)], checks.schema.field("ts").type),
    )
    pq.write_table(pa.concat_tables([checks, later]), day)
    inputs = _tree(data)

    changed = ingest_incremental(data, state)
    assert {p.name for p in (store / "parts").iterdir()} > first_parts  # nothing pruned before the commit
    stray = store / "parts" / "written-by-a-run-that-has-not-committed.parquet"
    stray.write_bytes(b"x")  # after this run started: it may be another run's, so it stays
    assert commit_ingest(changed) and changed.extra["pruned_parts"] == 2
    named = {e["part"] for e in changed.extra["pending_state"]["files"].values()}
    assert {p.name for p in (store / "parts").iterdir()} == named | {stray.name}
    assert _tree(data) == inputs  # inputs are never touched
    again = ingest_incremental(data, state)
    assert again.extra["ingest"]["read"] == 0 and snapshot_id(again.sha256) == snapshot_id(changed.sha256)
    stray.unlink()


def test_a_pruned_part_is_read_again_from_the_source(one_day) -> None:
    data, _, state = one_day
    first = ingest_incremental(data, state)
    commit_ingest(first)
    store = ingest_store(state, str(data.absolute()))
    assert prune_parts(store, set()) == 7  # e.g. deleted under a concurrent run
    again = ingest_incremental(data, state)
    assert again.extra["ingest"]["read"] == 7 and snapshot_id(again.sha256) == snapshot_id(first.sha256)
