"""The oracle's programme, all starts at once over distinct realized rows, finds exactly what the plain
per-start programme over every candidate pair finds (the form it had before), on random incidents
with many repeated rows, ties and several normal decisions."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from policies.backtest.costs import SwitchCosts
from policies.backtest.oracle import _transitions, _unique, hindsight_oracle
from policies.backtest.policies import Decision


class _World:
    """A realizer stand-in: each (state, decision) realizes one of a few level rows, so rows repeat."""

    def __init__(self, rng: np.random.Generator, workloads: int, levels: int) -> None:
        self.rng, self.memo = rng, {}
        self.rows = rng.integers(0, levels + 1, size=(6, workloads))
        self.values = {}  # (state, row) -> value per hour: the same row earns the same, so ties happen

    def __call__(self, truth, d: Decision):
        key = (truth.key, d.levels.tobytes())
        if key not in self.memo:
            r = int(self.rng.integers(len(self.rows)))
            value = self.values.setdefault((truth.key, r), float(self.rng.integers(0, 400)))
            self.memo[key] = (self.rows[r].copy(), value)
        return self.memo[key]

    def standby(self, truth, d: Decision) -> tuple[float, float]:
        return 0.0, 0.0


def _reference(truth, normal, candidates, normals, costs, hours, realize):
    """The plain programme: per start, every (from, to) candidate pair charged in full."""
    cands = _unique(list(normals) + list(candidates))
    starts = _unique(normals)
    bounds = [0] + [t for t in range(1, len(truth)) if truth[t].key != truth[t - 1].key] + [len(truth)]
    segs = [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]
    R, V = [], []
    for a, _ in segs:
        pairs = [realize(truth[a], d) for d in cands]
        R.append(np.stack([k for k, _ in pairs]))
        V.append(np.array([v for _, v in pairs], dtype=np.float64))
    best_total, best_path, best_start = -np.inf, None, None
    for s0 in starts:
        k0, _ = realize(normal, s0)
        score = V[0] * (segs[0][1] - segs[0][0]) * hours - costs.charge_many(k0[None, :], R[0])
        back = []
        for i in range(1, len(segs)):
            total = score[:, None] - costs.charge_many(R[i - 1][:, None, :], R[i][None, :, :])
            arg = np.argmax(total, axis=0)
            back.append(arg)
            score = total[arg, np.arange(len(cands))] + V[i] * (segs[i][1] - segs[i][0]) * hours
        final = score - costs.charge_many(R[-1], k0[None, :])
        j = int(np.argmax(final))
        if final[j] > best_total + 1e-9:
            path = [j]
            for arg in reversed(back):
                path.append(int(arg[path[-1]]))
            best_total, best_path, best_start = float(final[j]), path[::-1], s0
    return [cands[best_path[i]] for i, (a, b) in enumerate(segs) for _ in range(a, b)], best_start


@pytest.mark.parametrize("seed", range(12))
def test_the_oracle_finds_the_plain_programmes_path(seed: int) -> None:
    rng = np.random.default_rng(seed)
    w, levels = int(rng.integers(2, 9)), 4
    costs = SwitchCosts(
        tuple(f"w{i}" for i in range(w)),
        rng.uniform(0.5, 50.0, w),
        rng.uniform(0.0, 300.0, w),
        rng.uniform(0.0, 120.0, w),
        levels,
    )
    states = [SimpleNamespace(key=f"s{k}") for k in range(int(rng.integers(1, 6)))]
    runs = rng.integers(len(states), size=int(rng.integers(1, 12)))
    truth = [states[i] for i in runs for _ in range(int(rng.integers(1, 20)))]  # segments of 1-19 windows
    normal = SimpleNamespace(key="normal")

    def decision() -> Decision:
        return Decision(rng.integers(0, levels + 1, w), np.arange(w))

    candidates = [decision() for _ in range(int(rng.integers(1, 30)))]
    normals = [decision() for _ in range(int(rng.integers(1, 5)))]
    world = _World(rng, w, levels)
    got = hindsight_oracle(truth, normal, candidates, normals, costs, 1 / 60, world)
    want, start = _reference(truth, normal, candidates, normals, costs, 1 / 60, world)
    assert got.normal is start
    assert [d is e for d, e in zip(got.decisions, want, strict=True)] == [True] * len(truth)


def test_the_charges_of_distinct_rows_are_the_full_products_numbers() -> None:
    rng = np.random.default_rng(3)
    costs = SwitchCosts(("a", "b", "c"), rng.uniform(1, 9, 3), rng.uniform(0, 99, 3), rng.uniform(0, 60, 3), 4)
    before = rng.integers(0, 5, size=(40, 3))[rng.integers(40, size=60)]  # repeated rows
    after = rng.integers(0, 5, size=(7, 3))[rng.integers(7, size=50)]
    full = costs.charge_many(before[:, None, :], after[None, :, :])
    assert np.array_equal(_transitions(costs, before, after), full)  # bit for bit, not approximately
