"""The shedding model: minimum-share rounding and relaxation, feasibility, rejected inputs."""

from __future__ import annotations

import numpy as np
import pytest

from policies.shedding.problem import SheddingProblem, is_feasible_shedding, shedding_objective
from tests.policies.shedding_cases import make_problem


def test_min_share_relaxation_by_hand():
    # minimums 0.75 + 0.75 of demand 10 each need 15 > capacity 10: f = 10 / 15, levels floor(2/3 * 3) = 2
    p = SheddingProblem(
        "relax",
        ("a", "b", "c"),
        np.array([5.0, 5.0, 1.0]),
        np.zeros(3),
        np.array([10.0, 10.0, 10.0]),
        np.array([0.75, 0.75, 0.75]),
        np.array([True, True, False]),
        10.0,
    )
    b = p.bounds
    assert b.relaxed and b.factor == pytest.approx(2 / 3)
    np.testing.assert_array_equal(b.lo, [2, 2, 0])
    fits = SheddingProblem(
        "fits",
        ("a", "b"),
        np.ones(2),
        np.zeros(2),
        np.array([10.0, 10.0]),
        np.array([0.3, 0.5]),
        np.ones(2, bool),
        10.0,
    )
    assert not fits.bounds.relaxed
    np.testing.assert_array_equal(fits.bounds.lo, [2, 2])  # 0.3 rounds up to 2/4


def test_feasibility_rules():
    p = make_problem(1, 5)
    lo = p.bounds.lo
    assert is_feasible_shedding(p, lo)
    assert not is_feasible_shedding(p, np.full(5, p.levels + 1))
    assert not is_feasible_shedding(p, lo + 0.5)
    if p.runnable.all():
        return
    bad = lo.copy()
    bad[np.flatnonzero(~p.runnable)[0]] = 1
    assert not is_feasible_shedding(p, bad)
    with pytest.raises(ValueError):
        shedding_objective(p, np.zeros(4))


@pytest.mark.parametrize(
    ("change", "exc"),
    [
        ({"workload_ids": ("b", "a")}, ValueError),
        ({"workload_ids": ("a", "a")}, ValueError),
        ({"demand": np.array([-1.0, 1.0])}, ValueError),
        ({"min_share": np.array([0.0, 1.5])}, ValueError),
        ({"value_per_hour": np.array([np.nan, 1.0])}, ValueError),
        ({"runnable": np.array([1, 0])}, TypeError),
        ({"capacity": -1.0}, ValueError),
        ({"levels": 0}, ValueError),
        ({"demand": np.ones(3)}, ValueError),
    ],
)
def test_bad_problems_are_rejected(change, exc):
    base = {
        "scenario_key": "k",
        "workload_ids": ("a", "b"),
        "value_per_hour": np.ones(2),
        "risk_per_hour": np.zeros(2),
        "demand": np.ones(2),
        "min_share": np.zeros(2),
        "runnable": np.ones(2, bool),
        "capacity": 1.0,
    }
    with pytest.raises(exc):
        SheddingProblem(**{**base, **change})
