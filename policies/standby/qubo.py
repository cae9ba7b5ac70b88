r"""The standby problem as a QUBO (a surrogate with co-failure terms).

Energy (minimised; x_c = 1 keeps candidate c warm)::

    E(x) = - sum_c a_c x_c  +  sum_{c < c'} b_{cc'} x_c x_{c'}  +  budget penalties
    a_c     = sum_k gain[k, c]                       what c is worth alone
    b_{cc'} = sum_k min(gain[k, c], gain[k, c'])      what c and c' cover twice

By inclusion-exclusion this is the exact objective whenever at most two chosen candidates are
usable in any scenario for the same service, and an under-estimate otherwise. ``b`` is the
co-failure term: it is large exactly for copies of one service whose sites are up (and fail)
together. Every sample is repaired and scored on the exact objective anyway.

Budgets, per site i, chosen from the data: no term when all its candidates fit; a slack-free
``lambda_i sum x_c x_c'`` when no two fit (at most one); else the inequality with binary slack
bits (``BinaryQuadraticModel.add_linear_inequality_constraint``) over costs in units of
``B_i / resolution`` rounded up (units of 1 when costs and budget are small integers, which is
exact). ``lambda_i = penalty_factor * max_{c at i} a_c``: with ``penalty_factor > 1`` dropping
any candidate of an over-budget site lowers the energy, so the ground state is feasible and,
when the surrogate is exact, the true optimum (tests/policies/test_standby_qubo.py checks it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import dimod
import numpy as np

from policies.standby.problem import StandbyProblem

__all__ = ["StandbyQubo", "build_standby_qubo"]


@dataclass(frozen=True, eq=False)
class StandbyQubo:
    bqm: dimod.BinaryQuadraticModel
    variables: tuple[int, ...]  # candidate index of each decision variable, in label order
    lagrange: dict[str, float]  # per constrained site
    encodings: dict[str, str]  # per site: none | at_most_one | slack


def build_standby_qubo(problem: StandbyProblem, *, penalty_factor: float = 1.5, resolution: int = 64) -> StandbyQubo:
    """The BQM above, labels = candidate ids in sorted order (then slack bits), so it repeats."""
    if not penalty_factor > 0 or resolution < 1:
        raise ValueError("penalty_factor must be > 0 and resolution >= 1")
    p = problem
    fits_alone = p.cost <= p.budget[p.site] + p.tolerance[p.site]
    useful = fits_alone & (p.solo_value > 0)
    variables = tuple(int(c) for c in np.flatnonzero(useful))
    bqm = dimod.BinaryQuadraticModel("BINARY")
    for c in variables:
        bqm.add_variable(p.candidate_ids[c], -float(p.solo_value[c]))
    # co-failure terms: candidates usable together in a pair cover it twice
    g = p.gain.tocsr()
    quad: dict[tuple[int, int], float] = {}
    keep = set(variables)
    for k in range(g.shape[0]):
        cols, vals = g.indices[g.indptr[k] : g.indptr[k + 1]], g.data[g.indptr[k] : g.indptr[k + 1]]
        idx = [(int(c), float(v)) for c, v in zip(cols, vals) if int(c) in keep]
        for a in range(len(idx)):
            for b in range(a + 1, len(idx)):
                (ca, va), (cb, vb) = sorted((idx[a], idx[b]))
                quad[(ca, cb)] = quad.get((ca, cb), 0.0) + min(va, vb)
    for (ca, cb), v in sorted(quad.items()):
        bqm.add_interaction(p.candidate_ids[ca], p.candidate_ids[cb], v)
    lagrange, encodings = {}, {}
    for i, site in enumerate(p.site_ids):
        at = [c for c in variables if p.site[c] == i]
        cost = p.cost[at]
        if not at or float(cost.sum()) <= p.budget[i] + p.tolerance[i]:
            encodings[site] = "none"
            continue
        lam = penalty_factor * float(max(p.solo_value[c] for c in at))
        lagrange[site] = lam
        two = np.sort(cost)[:2]
        if float(two.sum()) > p.budget[i] + p.tolerance[i]:
            encodings[site] = "at_most_one"
            for a in range(len(at)):
                for b in range(a + 1, len(at)):
                    bqm.add_interaction(p.candidate_ids[at[a]], p.candidate_ids[at[b]], lam)
            continue
        encodings[site] = "slack"
        integral = np.all(cost == np.round(cost)) and float(p.budget[i]).is_integer() and p.budget[i] <= 8 * resolution
        unit = 1.0 if integral else float(p.budget[i]) / resolution
        weight = np.maximum(np.ceil(cost / unit - 1e-9), 1).astype(np.int64)
        cap = int(math.floor(p.budget[i] / unit + 1e-9))
        bqm.add_linear_inequality_constraint(
            [(p.candidate_ids[c], int(w)) for c, w in zip(at, weight)],
            lagrange_multiplier=lam,
            label=f"slack:{site}",
            constant=0,
            lb=0,
            ub=cap,
        )
    return StandbyQubo(bqm, variables, lagrange, encodings)
