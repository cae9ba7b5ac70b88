r"""Correlated risk: what keeping two workloads at risk costs when their dependencies fail together.

The checks lag and an observed state s may escalate: the fitted joint model's scenarios that
contain s (:func:`~policies.shedding.admission.contains`; empirical and Ising-sampled
combinations) are what s may become, with probabilities proportional to theirs. In such a
scenario s' a workload w kept at full share loses g_w(s') = (r_w(s') - r_w(s))^+ per hour more
than in s. Added up, the expected loss is the sum of the workloads' own expectations whatever the
correlation; what correlation changes is the spread: the losses of w and v come *together* when
their dependencies co-fail, which is the tail the backtest's CVaR95 measures. The time-coupled
objective is therefore mean-variance (the second-order form of an exponential utility with risk
tolerance one hour of the normal state's value V): the cross terms of the variance of
sum_w x_w g_w, per pair w < v::

    c_wv = aversion / V * Cov_q(g_w, g_v)^+        q(s') = P(s') / sum of P over s and what contains it

kept only for positive covariance (the pairs whose risks escalate together) and for workloads
runnable in s. The own variances are not charged: they do not depend on how risks co-occur.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from policies.scenarios.scenario_set import NORMAL_KEY, Scenario
from policies.shedding.admission import containing
from policies.shedding.problem import SheddingProblem

__all__ = ["correlated_risk", "pair_costs"]


def correlated_risk(
    state: SheddingProblem,
    later: Sequence[SheddingProblem],
    probability: float,
    later_probabilities: Sequence[float],
    *,
    aversion: float,
    scale: float,
) -> sp.csr_array | None:
    """The strictly upper-triangular c_wv of the module docstring (sparse); None when no pair costs anything."""
    q = np.array([probability, *later_probabilities], dtype=np.float64)
    if not later or aversion <= 0 or scale <= 0 or q.sum() <= 0:
        return None
    q /= q.sum()
    g = np.vstack(
        [np.zeros(len(state.workload_ids))] + [np.maximum(p.risk_per_hour - state.risk_per_hour, 0) for p in later]
    )
    # A workload whose risk no containing scenario raises has g = 0 there: no covariance with
    # anything. Work on the others only (a few of a large fleet's workloads) and return sparse.
    support = np.flatnonzero(g.any(axis=0) & state.runnable)
    if support.size < 2:
        return None
    gs = g[:, support]
    mean = q @ gs
    cov = (gs * q[:, None]).T @ gs - np.outer(mean, mean)
    c = np.triu(np.maximum(cov, 0.0), 1) * (aversion / scale)
    c[c <= 1e-12 * max(float(c.max(initial=0.0)), 1e-300)] = 0.0  # covariance rounding noise is not a pair
    r, k = np.nonzero(c)
    if not r.size:
        return None
    n = len(state.workload_ids)
    return sp.csr_array((c[r, k], (support[r], support[k])), shape=(n, n))


def pair_costs(
    scenarios: Sequence[Scenario], problems: Sequence[SheddingProblem], *, aversion: float
) -> dict[str, sp.csr_array | None]:
    """Per failing scenario, its pairs' correlated cost over the scenarios that contain it (normal and the
    fallback are neither planned over time nor an escalation); V is the normal state's total value."""
    normal = next((p for s, p in zip(scenarios, problems) if s.key == NORMAL_KEY), None)
    scale = float(np.sum(normal.value_per_hour)) if normal is not None else 0.0
    out: dict[str, np.ndarray | None] = {}
    for i, up in containing(scenarios).items():
        s = scenarios[i]
        out[s.key] = correlated_risk(
            problems[i],
            [problems[j] for j in up],
            s.probability,
            [scenarios[j].probability for j in up],
            aversion=aversion,
            scale=scale,
        )
    return out
