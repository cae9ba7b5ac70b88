"""Per-file window grids combine to exactly what observe_windows gives on all the checks at once."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.errors import DataValidationError
from policies.model.failure_model import fit_failure_model
from policies.model.states import observe_windows
from policies.model.window_grid import observe_from_grids, window_grid
from policies.schema import STATUSES

NAMES = ("a", "b", "c", "d")
T0 = 1_700_000_000_000  # ms


def random_checks(
    rng: np.random.Generator, n: int, span_min: int, probes: tuple[str, ...], services: tuple[str, ...] = NAMES[:3]
) -> pa.Table:
    ts = T0 + rng.integers(-span_min * 60_000 // 4, span_min * 60_000, n)
    return pa.table(
        {
            "ts": pa.array(ts, pa.timestamp("ms", tz="UTC")),
            "service_id": pa.array(rng.choice(services, n).tolist()),  # by default "d" never reports
            "probe": pa.array(rng.choice(probes, n).tolist()),
            "status": pa.array(rng.choice(STATUSES, n, p=[0.6, 0.25, 0.15]).tolist()),
        }
    )


def split(table: pa.Table, rng: np.random.Generator, parts: int, by_time: bool) -> list[pa.Table]:
    """Random files: contiguous time ranges (with stragglers) or a random scatter (overlapping files)."""
    order = np.argsort(table.column("ts").to_numpy(), kind="stable") if by_time else rng.permutation(table.num_rows)
    cuts = np.sort(rng.choice(np.arange(1, table.num_rows), parts - 1, replace=False)) if parts > 1 else []
    return [table.take(pa.array(idx)) for idx in np.split(order, cuts) if len(idx)]


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 400),
    parts=st.integers(1, 6),
    window_min=st.sampled_from([1, 5, 7]),
    agreement=st.sampled_from(["majority", "any", "all"]),
    by_time=st.booleans(),
    n_probes=st.integers(1, 7),
    n_services=st.integers(1, 4),
)
def test_grids_of_any_split_observe_what_the_whole_table_does(
    seed, n, parts, window_min, agreement, by_time, n_probes, n_services
):
    rng = np.random.default_rng(seed)
    checks = random_checks(
        rng,
        n,
        span_min=int(rng.integers(5, 300)),
        probes=tuple(f"p{i}" for i in range(n_probes)),
        services=NAMES[:n_services],
    )  # 7 probes: the counted path, fewer: the lookup table
    files = split(checks, rng, min(parts, n), by_time)
    grids = [window_grid(f, window_min) for f in files]
    assert all(g is not None for g in grids)
    got = observe_from_grids(grids, NAMES, agreement)
    want = observe_windows(checks, NAMES, window_min, agreement)
    assert got is not None
    np.testing.assert_array_equal(got[0], want[0])
    assert got[1:] == want[1:]


def test_the_fit_from_grids_is_the_fit_from_checks(monkeypatch):
    rng = np.random.default_rng(3)
    checks = random_checks(rng, 3000, span_min=600, probes=("p1", "p2"))
    services = pa.table({"service_id": list(NAMES), "kind": ["internal"] * 4})
    deps = pa.table({"service_id": ["a"], "depends_on": ["b"], "hard": [True]})
    grids = [window_grid(f, 1) for f in split(checks, rng, 5, by_time=True)]
    a = fit_failure_model(services, deps, checks, window_min=1, hysteresis_windows=2)
    import policies.model.failure_model as fm

    def no_scan(*args, **kwargs):
        raise AssertionError("the checks were scanned although every file has a grid")

    monkeypatch.setattr(fm, "observe_windows", no_scan)
    b = fit_failure_model(services, deps, checks, window_min=1, hysteresis_windows=2, grids=grids)
    np.testing.assert_array_equal(a.states, b.states)
    assert a.per_dependency.equals(b.per_dependency) and a.co_failure.equals(b.co_failure) and a.info == b.info


def test_unknown_services_fail_like_observe_windows():
    checks = random_checks(np.random.default_rng(1), 50, span_min=30, probes=("p1",))
    grids = [window_grid(checks, 1)]
    with pytest.raises(DataValidationError) as got:
        observe_from_grids(grids, ("a", "b"))
    with pytest.raises(DataValidationError) as want:
        observe_windows(checks, ("a", "b"), 1)
    assert got.value.violations[0].rule == want.value.violations[0].rule == "service_id in services"
    assert got.value.violations[0].count == want.value.violations[0].count
    assert got.value.violations[0].examples == want.value.violations[0].examples == ["c"]


def test_sparse_or_incomplete_files_get_no_grid():
    sparse = pa.table(
        {
            "ts": pa.array([T0, T0 + 400 * 86_400_000], pa.timestamp("ms", tz="UTC")),
            "service_id": ["a", "b"],
            "probe": ["p1", "p1"],
            "status": ["up", "down"],
        }
    )
    assert window_grid(sparse, 1) is None  # two checks a year apart: the dense grid would be 1M cells per check
    assert window_grid(sparse.slice(0, 0), 1) is None
    nulls = sparse.set_column(2, "probe", pa.array([None, "p1"], pa.string()))
    assert window_grid(nulls, 1) is None
    far = [window_grid(sparse.slice(i, 1), 1) for i in range(2)]
    assert all(far) and observe_from_grids(far, NAMES) is None  # apart they fit, together they would not
