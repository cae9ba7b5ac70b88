"""Co-failure counts from the down cells only equal the dense products they replaced."""

from __future__ import annotations

import numpy as np

from policies.model.joint import _pair_counts, summarize_co_failure


def _runs(n_w: int, n_s: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    down = np.zeros((n_w, n_s), dtype=bool)
    for j in range(n_s):
        for start in np.flatnonzero(rng.random(n_w) < 0.004 * (j % 4)):  # a quarter never down
            down[start : start + int(rng.integers(1, 40)), j] = True
    return down


def test_pair_counts_equal_the_dense_product() -> None:
    down = _runs(3000, 60, seed=5)
    dense = down.astype(np.int64)
    assert np.array_equal(_pair_counts(down), dense.T @ dense)
    assert _pair_counts(np.zeros((10, 3), dtype=bool)).tolist() == [[0] * 3] * 3


def test_joint_windows_and_episodes_are_counted_pair_by_pair() -> None:
    down = _runs(3000, 60, seed=9)
    names = tuple(f"svc-{j:02d}" for j in range(60))
    co = summarize_co_failure(down, names, None, {}, np.full(60, 0.05))
    assert len(co) > 100
    for row in co.sample(25, random_state=1).itertuples():
        a, b = down[:, names.index(row.a)], down[:, names.index(row.b)]
        both = a & b
        assert row.windows_joint == both.sum()
        assert row.episodes_joint == both[0] + (both[1:] & ~both[:-1]).sum()  # onsets of "both down"
    never = {names[j] for j in range(0, 60, 4)}
    assert never.isdisjoint(set(co["a"]) | set(co["b"]))
