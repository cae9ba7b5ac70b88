"""The one CVaR: each caller's convention by hand, and where the conventions must agree."""

from __future__ import annotations

import numpy as np
import pytest

from policies.backtest.metrics import summarize
from policies.risk import cvar


def test_equally_likely_by_hand() -> None:
    assert cvar(np.array([1.0, 2.0, 3.0, 4.0]), 0.5) == pytest.approx(3.5)
    assert cvar(np.array([0.0, 10.0, 0.0, 0.0]), 0.8) == pytest.approx(10.0)  # a tail of 0.8 samples of 4
    assert cvar(np.array([5.0, 1.0]), 0.0) == pytest.approx(3.0)  # alpha 0: the mean
    assert cvar(np.array([4.0, 0.0, 2.0, 1.0, 3.0]), 0.7) == pytest.approx((4.0 + 0.5 * 3.0) / 1.5)  # fractional


def test_whole_tail_counts_incidents() -> None:
    losses = list(range(1, 21))
    assert cvar(losses, 0.95, whole_tail=True) == 20.0  # 0.05 * 20 is one incident, not 1.0000000000000009
    assert cvar(losses, 0.90, whole_tail=True) == pytest.approx(19.5)
    assert cvar(losses, 0.0, whole_tail=True) == pytest.approx(10.5)
    assert cvar([3.0, 1.0], 0.95, whole_tail=True) == 3.0  # fewer than 20: the worst
    with pytest.raises(ValueError):
        cvar([1.0, float("nan")], 0.5, whole_tail=True)


def test_probability_weighted_by_hand() -> None:
    assert cvar(np.array([1.0, 11.0]), 0.5, probabilities=np.array([0.5, 0.5])) == pytest.approx(11.0)
    # worst 0.3 of the mass: 0.2 at 10 and 0.1 at 5
    assert cvar(np.array([5.0, 10.0, 1.0]), 0.7, probabilities=np.array([0.3, 0.2, 0.5])) == pytest.approx(
        (0.2 * 10 + 0.1 * 5) / 0.3
    )


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize(("n", "alpha"), [(20, 0.95), (20, 0.9), (64, 0.75), (10, 0.5), (7, 0.0)])
def test_the_three_conventions_agree_on_whole_tails(seed: int, n: int, alpha: float) -> None:
    """Where (1 - alpha) n is a whole number of equally likely losses, all three give the same CVaR."""
    losses = np.random.default_rng(seed).exponential(10.0, n)
    raw = cvar(losses, alpha)
    assert cvar(losses, alpha, whole_tail=True) == pytest.approx(raw, rel=1e-12)
    assert cvar(losses, alpha, probabilities=np.full(n, 1.0 / n)) == pytest.approx(raw, rel=1e-12)


@pytest.mark.parametrize("seed", range(10))
def test_raw_and_whole_tail_differ_only_in_rounding_on_fractional_tails(seed: int) -> None:
    """Routing's fractional tail (64 samples at 0.95 = 3.2) is the weighted CVaR with equal weights."""
    losses = np.random.default_rng(seed).exponential(10.0, 64)
    weighted = cvar(losses, 0.95, probabilities=np.full(64, 1.0 / 64))
    assert cvar(losses, 0.95) == pytest.approx(weighted, rel=1e-12)
    assert cvar(losses, 0.95, whole_tail=True) == pytest.approx(weighted, rel=1e-12)


def test_invalid_input() -> None:
    with pytest.raises(ValueError):
        cvar([1.0], 1.0)
    with pytest.raises(ValueError):
        cvar([], 0.5)


def test_backtest_summary_without_incidents_has_no_cvar() -> None:
    assert summarize([], alpha=0.95)["overall"] == {}
