"""Routing per scenario over the services it touches; every other service keeps normal's answer.

Why this is exact: the routing LP separates by service (objective and constraints are sums of
per-service terms, :mod:`policies.routing.problem`), and a service whose endpoints a scenario
leaves as in ``normal`` has normal's capacities and, since samples are drawn per service and
endpoint state (:func:`policies.routing.policy.routing_documents`), normal's samples. Its block
of the scenario's LP is normal's block, so normal's weights are optimal for it, and the LP
restricted to the touched services (``restrict=True``) plus normal's weights for the rest is an
optimum of the whole LP. The solve then grows with the services a scenario touches, not with
the fleet. :func:`splice` puts the pieces back together, so the bundle still carries every
endpoint of every scenario.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from policies.routing.problem import RoutingProblem, routing_objective
from policies.solve.portfolio import PolicyResult, PortfolioResult, rekeyed

__all__ = ["splice", "block_objectives"]


def block_objectives(p: RoutingProblem, x) -> np.ndarray:
    """Each service's term of :func:`routing_objective` (they sum to it)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros(len(p.service_ids))
    for j in range(len(p.service_ids)):
        e = np.flatnonzero(p.service == j)
        one = dataclasses.replace(
            p,
            endpoint_ids=tuple(p.endpoint_ids[i] for i in e),
            service_ids=(p.service_ids[j],),
            locality=tuple(p.locality[i] for i in e),
            service=np.zeros(len(e), dtype=np.int64),
            capacity=np.asarray(p.capacity)[e],
            samples=p.samples[:, e],
        )
        out[j] = routing_objective(one, x[e])
    return out


def splice(
    normal: RoutingProblem,
    normal_result: PortfolioResult,
    normal_blocks: np.ndarray,
    key: str,
    part: RoutingProblem | None,
    part_result: PortfolioResult | None,
) -> tuple[RoutingProblem, PortfolioResult]:
    """The whole problem of scenario ``key`` and its answer, from normal's and the restricted one's.

    ``part`` is the scenario's problem over the services it touches (None when it touches none);
    ``normal_blocks`` is :func:`block_objectives` of normal's chosen weights. Every candidate's
    weights are normal's outside ``part``; objectives and the bound add normal's untouched terms.
    """
    if part is None or part_result is None:
        return dataclasses.replace(normal, key=key), rekeyed(normal_result, key)
    where = np.searchsorted(normal.endpoint_ids, part.endpoint_ids)
    if not np.array_equal(np.asarray(normal.endpoint_ids)[where], np.asarray(part.endpoint_ids)):
        raise ValueError(f"routing {key!r}: the restricted problem names endpoints normal does not have")
    touched = np.isin(np.asarray(normal.service_ids), np.asarray(part.service_ids))
    rest = float(normal_blocks[~touched].sum())
    capacity, samples = np.array(normal.capacity, dtype=np.float64), normal.samples.copy()
    capacity[where], samples[:, where] = part.capacity, part.samples
    whole = dataclasses.replace(normal, key=key, capacity=capacity, samples=samples)
    base = np.asarray(normal_result.best.solution, dtype=np.float64)

    def widen(r: PolicyResult) -> PolicyResult:
        if np.asarray(r.solution).shape != (len(part.endpoint_ids),):
            return r  # a solver that failed has no weights to widen
        x = base.copy()
        x[where] = r.solution
        info = dataclasses.replace(
            r.info, objective=r.info.objective + rest, bound=None if r.info.bound is None else r.info.bound + rest
        )
        return dataclasses.replace(r, solution=x, objective=r.objective + rest, info=info)

    r = rekeyed(part_result, key)
    bound = None if r.bound is None else r.bound + rest
    gap = r.gap if bound is None else max((r.best.objective + rest - bound) / max(abs(bound), 1e-9), 0.0)
    result = dataclasses.replace(
        r,
        best=widen(r.best),
        candidates=tuple(map(widen, r.candidates)),
        alternatives=tuple(map(widen, r.alternatives)),
        bound=bound,
        gap=gap,
    )
    return whole, result
