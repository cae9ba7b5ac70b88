"""The failure model's per-file window grids: cached by file sha256, pruned with the files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from policies.model.states import observe_windows
from policies.model.window_grid import observe_from_grids
from tasks.estimate import health_check_grids

T0 = 1_700_000_000_000


def day(offset: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    n = 500
    return pa.table(
        {
            "ts": pa.array(T0 + offset * 86_400_000 + rng.integers(0, 86_400_000, n), pa.timestamp("ms", tz="UTC")),
            "service_id": rng.choice(["a", "b"], n).tolist(),
            "probe": rng.choice(["p1", "p2"], n).tolist(),
            "status": rng.choice(["up", "degraded", "down"], n).tolist(),
            "latency_ms": rng.random(n),
        }
    )


def entries(cache: Path) -> set[Path]:
    return set(cache.glob("*/*.json"))


def test_grids_are_cached_by_file_and_pruned_with_it(tmp_path: Path) -> None:
    cache = tmp_path / "windows"
    d0, d1, d1_changed = day(0, 1), day(1, 2), day(1, 3)
    first = health_check_grids([("sha-0", d0), ("sha-1", d1), (None, day(2, 4))], window_min=5, cache_dir=cache)
    kept = entries(cache)
    assert len(kept) == 2  # rows without a file sha256 (left after quarantine) are not cached
    stamps = {p: p.stat().st_mtime_ns for p in kept}
    again = health_check_grids([("sha-0", d0), ("sha-1b", d1_changed)], window_min=5, cache_dir=cache)
    now = entries(cache)
    assert len(now) == 2 and len(now & kept) == 1  # day 0 read back, the old day 1 pruned, the changed one stored
    assert all(p.stat().st_mtime_ns == stamps[p] for p in now & kept)  # a hit is not written again
    names = ("a", "b")
    whole = pa.concat_tables([d0, d1_changed])
    got, want = observe_from_grids(again, names), observe_windows(whole, names, 5)
    np.testing.assert_array_equal(got[0], want[0])
    assert got[1:] == want[1:] and len(first) == 3
    # another window length is another entry; the grids of the old length go with the next prune
    health_check_grids([("sha-0", d0)], window_min=1, cache_dir=cache)
    assert len(entries(cache)) == 1
