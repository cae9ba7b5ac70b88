"""Joint failure: which dependencies go down together, and a pairwise model to sample from.

**Co-failure** (:func:`summarize_co_failure`), per pair ``a < b`` that went down together in
some window or shared an incident: joint down windows and ``p_joint``, lift over independence
(``p_joint / (p_a p_b)``), incidents naming both, and a significance test that respects
autocorrelation. Windows of one outage are not independent, so the test counts *joint
episodes* (onsets of "both down"), not windows: for two independent alternating processes the
rate of entering "both down" is ``p_a p_b (mu_a + mu_b)`` (from detailed balance,
``(1 - p) lambda = p mu``), so ``expected_episodes = windows * p_a * p_b * (mu_a + mu_b)`` with
``mu`` the recovery rate per window. ``p_value`` is the Poisson tail of the observed count, and
``significant`` holds when it is below ``alpha`` divided by the number of pairs tested
(Bonferroni) and the lift is above 1. ``graph_linked`` marks pairs where one hard-depends on
the other (directly or through others): their co-failure is explained by the graph.

**Ising model** (:func:`fit_ising`, :func:`sample_ising`): ``P(x) ∝ exp(h·x + Σ_{i<j} J_ij x_i
x_j)`` over 0/1 down indicators, fitted by L2-penalized pseudo-likelihood (one logistic
regression per variable, Newton steps) on distinct patterns weighted by their counts, so its
cost does not grow with the number of windows. Couplings are fitted only for pairs seen down
together in some pattern (``J_ij = 0``, independence, for the others): pairwise work only where
pairs can co-fail, so each regression is over a variable's few co-failing partners, not the
fleet (at 1,000 services the dense form did not finish in minutes). Sampled with any dimod sampler at a fixed
inverse temperature; the samples only *propose* combinations, whose probabilities are then
read off the model exactly relative to the all-up state.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy import sparse
from scipy.stats import poisson

from policies.graph import close_down_set

__all__ = ["summarize_co_failure", "count_incident_pairs", "IsingModel", "fit_ising", "sample_ising"]


def count_incident_pairs(incidents: pa.Table | None, names: tuple[str, ...]) -> np.ndarray:
    """``[i, j]`` = incidents whose ``affected`` list names both ``names[i]`` and ``names[j]``."""
    n = len(names)
    if incidents is None or incidents.num_rows == 0:
        return np.zeros((n, n), dtype=np.int64)
    affected = incidents.column("affected").combine_chunks()
    flat = pc.list_flatten(affected)
    parent = pc.list_parent_indices(affected).to_numpy()
    idx = pc.index_in(flat, value_set=pa.array(names, pa.string()))
    known = pc.is_valid(idx).to_numpy(zero_copy_only=False)  # ids outside ``names`` are ignored
    col = pc.fill_null(idx, 0).to_numpy().astype(np.int64)
    hit = np.zeros((incidents.num_rows, n), dtype=np.float64)
    hit[parent[known], col[known]] = 1.0  # duplicates in one list count once
    return np.rint(hit.T @ hit).astype(np.int64)


def summarize_co_failure(
    down: np.ndarray,
    names: tuple[str, ...],
    incidents: pa.Table | None,
    dependents: dict,
    recovery_per_window: np.ndarray,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Pairs of services that were each down at least once and went down together (or shared an
    incident), with lift, joint episodes against independence and the graph link; see the module
    docstring. Sorted by lift (descending), then ``a``, ``b``."""
    n_w = down.shape[0]
    counts = down.sum(axis=0)
    ever = np.flatnonzero(counts > 0)
    # Pairwise work only where pairs can co-fail: services down at least once, and only their
    # down cells (sparse products: each window costs its down services squared). The dense
    # product cost windows x services squared: 43,200 windows x 1,000 services is mostly
    # windows with some outage, so it grew with the fleet per row of checks.
    ever_down = down[:, ever]
    joint = _pair_counts(ever_down)
    # Onsets of "both down" = windows both down - windows both down in this and the previous one.
    onsets = joint - _pair_counts(ever_down[1:] & ever_down[:-1])
    del ever_down
    inc = count_incident_pairs(incidents, names)[np.ix_(ever, ever)]
    ia, ib = np.triu_indices(ever.size, k=1)
    n_tests = max(ia.size, 1)
    wj, ij, ej = joint[ia, ib], inc[ia, ib], onsets[ia, ib]
    keep = (wj > 0) | (ij > 0)
    ia, ib, wj, ij, ej = ia[keep], ib[keep], wj[keep], ij[keep], ej[keep]
    ga, gb = ever[ia], ever[ib]
    p_a, p_b = counts[ga] / n_w, counts[gb] / n_w
    p_joint = wj / n_w
    denom = p_a * p_b
    lift = np.divide(p_joint, denom, out=np.full(p_joint.shape, np.nan), where=denom > 0)
    expected = n_w * p_a * p_b * (recovery_per_window[ga] + recovery_per_window[gb])
    p_value = np.where(ej > 0, poisson.sf(ej - 1, expected), 1.0)
    names_arr = np.asarray(names, dtype=object)
    closure: dict[str, frozenset] = {}  # one graph walk per service, not two per pair

    def down_with(x: str) -> frozenset:
        if x not in closure:
            closure[x] = frozenset(close_down_set([x], dependents))
        return closure[x]

    linked = [
        bool(b in down_with(a) or a in down_with(b)) for a, b in zip(names_arr[ga], names_arr[gb])
    ]  # one loop per co-failing pair
    out = pd.DataFrame(
        {
            "a": pd.Series(names_arr[ga], dtype=object),
            "b": pd.Series(names_arr[gb], dtype=object),
            "windows_joint": wj.astype(np.int64),
            "p_joint": p_joint,
            "p_a": p_a,
            "p_b": p_b,
            "lift": lift,
            "incidents_joint": ij.astype(np.int64),
            "episodes_joint": ej.astype(np.int64),
            "expected_episodes": expected,
            "p_value": p_value,
            "significant": (p_value < alpha / n_tests) & (lift > 1.0),
            "graph_linked": np.asarray(linked, dtype=bool),
        }
    )
    out = out.sort_values(["lift", "a", "b"], ascending=[False, True, True], na_position="last", kind="mergesort")
    return out.reset_index(drop=True)


def _pair_counts(x: np.ndarray) -> np.ndarray:
    """``x.T @ x`` of a 0/1 matrix as exact int64 counts, computed over its nonzero cells only."""
    rows, cols = np.nonzero(x)
    m = sparse.csr_array((np.ones(rows.size, dtype=np.int64), (rows, cols)), shape=x.shape)
    return (m.T @ m).toarray()


class IsingModel:
    """``log P(x) = log P(0) + h·x + x·J·x / 2`` over the 0/1 vectors of ``names``."""

    def __init__(self, names: tuple[str, ...], h: np.ndarray, J: np.ndarray, log_p0: float) -> None:
        self.names, self.h, self.J, self.log_p0 = names, h, J, float(log_p0)

    def log_probability(self, x: np.ndarray) -> np.ndarray:
        """Log probability of each row of ``x`` (relative to the all-up state's probability)."""
        x = np.atleast_2d(x).astype(np.float64)
        return self.log_p0 + x @ self.h + 0.5 * np.einsum("ri,ij,rj->r", x, self.J, x)


def fit_ising(
    names: tuple[str, ...], x: np.ndarray, weights: np.ndarray, *, l2: float = 1.0, iterations: int = 30
) -> IsingModel:
    """Pseudo-likelihood fit on distinct 0/1 rows ``x`` seen ``weights`` times each.

    ``log P(0)`` is anchored to the observed share of all-zero rows (or ``1 / total`` if none).
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    r, n = x.shape
    h, J = np.zeros(n), np.zeros((n, n))
    design = np.hstack([np.ones((r, 1)), x])
    together = (x.T * w) @ x > 0  # pairs down together in some pattern
    for i in range(n):  # one small Newton solve per variable, never per row
        cols = np.r_[0, 1 + np.flatnonzero(together[i] & (np.arange(n) != i))]
        a, y = design[:, cols], x[:, i]
        penalty = np.full(cols.size, l2)
        penalty[0] = 1e-6  # the intercept is almost free
        beta = np.zeros(cols.size)
        for _ in range(iterations):
            p = 1.0 / (1.0 + np.exp(-(a @ beta)))
            grad = a.T @ (w * (y - p)) - penalty * beta
            hess = (a * (w * p * (1 - p))[:, None]).T @ a + np.diag(penalty)
            step = np.linalg.solve(hess, grad)
            beta += step
            if np.abs(step).max() < 1e-8:
                break
        h[i] = beta[0]
        J[i, cols[1:] - 1] = beta[1:]
    J = (J + J.T) / 2.0
    np.fill_diagonal(J, 0.0)
    zero = ~x.any(axis=1)
    total = w.sum()
    p0 = w[zero].sum() / total if zero.any() else 1.0 / total
    return IsingModel(tuple(names), h, J, np.log(p0))


def sample_ising(
    model: IsingModel, *, sampler=None, num_reads: int = 400, num_sweeps: int = 200, beta: float = 0.5, seed: int = 0
) -> np.ndarray:
    """Distinct 0/1 states proposed by a dimod sampler at inverse temperature ``beta``.

    ``beta < 1`` samples a flattened (hotter) model, so rare multi-failures get proposed; the
    caller scores them with :meth:`IsingModel.log_probability`. Variables are added in a fixed
    order, so a seeded sampler repeats.
    """
    import dimod

    if sampler is None:
        from dwave.samplers import SimulatedAnnealingSampler

        sampler = SimulatedAnnealingSampler()
    n = len(model.names)
    if n == 0:
        return np.zeros((0, 0), dtype=np.int8)
    bqm = dimod.BinaryQuadraticModel("BINARY")
    for i in range(n):
        bqm.add_variable(i, -float(model.h[i]))
    iu, ju = np.nonzero(np.triu(model.J, k=1))  # row-major: the order of a loop over i < j
    for i, j in zip(iu.tolist(), ju.tolist()):
        bqm.add_interaction(i, j, -float(model.J[i, j]))
    result = sampler.sample(
        bqm,
        num_reads=num_reads,
        num_sweeps=num_sweeps,
        beta_range=(beta, beta),
        beta_schedule_type="linear",
        seed=int(seed) % (2**31 - 1),
    )
    samples = result.record.sample[:, np.argsort(result.variables)] if len(result.variables) else result.record.sample
    return np.unique(samples.astype(np.int8), axis=0)
