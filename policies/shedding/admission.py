"""Admission caps: shed by intent only where that beats the runtime's admission control.

A runtime with admission control serves what it is allowed to run in rank order against the
capacity it really has (:func:`~policies.shedding.problem.serve_in_order`), so it follows the
true state at once. The health checks that pick a plan lag by the detection delay, so a plan
that cuts a workload to fit the *observed* capacity keeps shedding it through that delay after
recovery, and the normal plan meets an outage in the normal state's order. Per scenario the
bundle therefore also ships ``admit_max``, the share a service may run when capacity is there:

- **Risk sheds stay cut** (a runnable workload whose value minus this state's risk is not
  positive keeps the plan's share: running more would lose value whatever the capacity).
- **Capacity sheds are left to admission control** (cap 1.0): in the observed state the plan's
  admitted workloads come first in rank order and all fit, so the rest only take what is left,
  and at recovery everything is served at once.
- **Partial shares** are capped at the plan's share unless lifting them loses nothing in the
  observed state (a whole level of a large workload can crowd out a better mix).

The normal state's order (:func:`anticipating_order`) is the one that does best, weighted by
the scenarios' probabilities, when an outage has begun but the checks still say normal (given the
detection delay and switching costs, :class:`CatchUp`: including the switch to the outage's own mix). Every
other state is ranked the same way over the scenarios that contain it (:func:`escalation_order`):
the checks lag, so what is observed may already have escalated to other dependencies, in the
proportions of the fitted joint model; the state's own plan stays first, so in the state itself
admission control still serves exactly the plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from policies.scenarios.scenario_set import FALLBACK_KEY, NORMAL_KEY
from policies.shedding.problem import SheddingProblem, check_levels, serve_in_order, shedding_objective
from policies.switching import SwitchCosts

__all__ = [
    "CatchUp",
    "rank_order",
    "admission_caps",
    "anticipating_order",
    "escalation_order",
    "contains",
    "containing",
]

_TOL = 1e-9
_MAX_SCENARIOS = 64  # the most probable scenarios weigh the normal state's order (bounded work on big bundles)


def rank_order(problem: SheddingProblem, levels_vec, order: Sequence[int] | None = None) -> np.ndarray:
    """The bundle's ranking: admitted workloads, then runnable-but-shed, then not runnable, each group
    in ``order`` (default: density, ``problem.order``)."""
    k = check_levels(problem, levels_vec)
    group = np.where(k > 0, 0, np.where(problem.runnable, 1, 2))
    pos = np.empty(len(k), dtype=np.int64)
    pos[np.asarray(problem.order if order is None else order, dtype=np.int64)] = np.arange(len(k))
    return np.lexsort((pos, group))


def admission_caps(problem: SheddingProblem, levels_vec, order: Sequence[int] | None = None) -> np.ndarray:
    """Per workload the most levels the runtime may admit in this state when it serves in
    ``rank_order(problem, levels_vec, order)`` (module docstring)."""
    k = np.asarray(check_levels(problem, levels_vec), dtype=np.int64)
    L = problem.levels
    risk_cut = problem.runnable & (problem.net <= 0)
    lifted = np.where(risk_cut, k, L).astype(np.int64)
    capped = np.where(risk_cut | ((k > 0) & (k < L)), k, L).astype(np.int64)
    order = rank_order(problem, k, order)

    def value(caps: np.ndarray) -> float:
        return shedding_objective(problem, serve_in_order(problem, caps, order))

    return lifted if value(lifted) >= value(capped) - _TOL else capped


@dataclass(frozen=True)
class CatchUp:
    """What meeting an outage in the normal state's order costs besides its value: the order serves the
    outage for ``delay_h`` hours (until the checks report it), then the state's own order takes over;
    both changes of levels are charged by ``costs`` (:class:`~policies.switching.SwitchCosts`)."""

    delay_h: float
    costs: SwitchCosts


def anticipating_order(
    normal: SheddingProblem,
    normal_caps,
    problems: Sequence[SheddingProblem],
    plans: Sequence[np.ndarray],
    caps: Sequence[np.ndarray],
    probabilities: Sequence[float],
    orders: Sequence[np.ndarray | None] | None = None,
    catch_up: CatchUp | None = None,
) -> np.ndarray:
    """The normal state's serving order: of the density order and each scenario's ranking of its plan
    (``plans``), the one whose admission of ``normal_caps`` keeps the most probability-weighted value
    across ``problems`` (outages the checks have not reported yet). With ``catch_up`` the value is what
    the order serves during the detection delay minus the switches into it and on to what the scenario's
    caps serve in its own order (``orders``; None: density) once the checks report it, so a mix that is
    only as good for a minute but must be switched away from loses. Among equal values, the one that
    most often serves what the scenario's caps will; then the density order."""
    return _best_order(normal, normal_caps, None, problems, plans, caps, probabilities, orders, catch_up)[0]


def _best_order(
    state, state_caps, plan, problems, plans, caps, probabilities, orders=None, catch_up=None
) -> tuple[np.ndarray, np.ndarray]:
    """(order, caps) for :func:`anticipating_order` or, with ``plan``, :func:`escalation_order`: each
    candidate is then ranked around the plan and gets its own caps, so that a partial share lifted for
    the density order is not lifted where it would crowd out the plan in the state itself."""
    fixed = np.asarray(check_levels(state, state_caps), dtype=np.int64)
    top = sorted(range(len(problems)), key=lambda i: (-float(probabilities[i]), i))[:_MAX_SCENARIOS]
    weights = [float(probabilities[i]) for i in top]
    if not top or sum(weights) <= 0:
        return np.asarray(state.order, dtype=np.int64), fixed
    ranked = [rank_order(problems[i], plans[i]) for i in top]
    own = [rank_order(problems[i], plans[i], None if orders is None else orders[i]) for i in top]
    later = [serve_in_order(problems[i], caps[i], r) for i, r in zip(top, own)]
    candidates = [np.asarray(state.order, dtype=np.int64), *ranked]
    if orders is not None:  # the orders the outages are really served in are candidates too
        seen = {tuple(c.tolist()) for c in candidates}
        candidates += [o for o in own if tuple(o.tolist()) not in seen and not seen.add(tuple(o.tolist()))]
    if plan is None:
        options = [(c, fixed) for c in candidates]
    else:
        options = [(rank_order(state, plan, c), admission_caps(state, plan, c)) for c in candidates]

    def score(order: np.ndarray, mine: np.ndarray) -> tuple[float, float]:
        value = agree = 0.0
        before = serve_in_order(state, mine, order)  # what runs until the outage begins
        for w, i, k_later in zip(weights, top, later):
            k = serve_in_order(problems[i], mine, order)
            if catch_up is None:
                value += w * shedding_objective(problems[i], k)
            else:
                c = catch_up.costs
                worth = (
                    catch_up.delay_h * shedding_objective(problems[i], k) - c.charge(before, k) - c.charge(k, k_later)
                )
                value += w * worth
            agree += w * float(np.array_equal(k, k_later))
        return value, agree

    best, (best_value, best_agree) = options[0], score(*options[0])
    tol = _TOL * max(1.0, abs(best_value))
    for c in options[1:]:
        value, agree = score(*c)
        if value > best_value + tol or (value >= best_value - tol and agree > best_agree + _TOL):
            best, best_value, best_agree = c, max(value, best_value), agree
    return best


def contains(outer_down, outer_degraded, inner_down, inner_degraded) -> bool:
    """Whether state ``outer`` is ``inner`` or an escalation of it: everything down in ``inner`` is down
    in ``outer``, and everything degraded in ``inner`` is degraded or down there (effective sets)."""
    down = frozenset(outer_down)
    return frozenset(inner_down) <= down and frozenset(inner_degraded) <= down | frozenset(outer_degraded)


def escalation_order(
    problem: SheddingProblem,
    plan,
    later: Sequence[SheddingProblem],
    later_plans: Sequence[np.ndarray],
    later_caps: Sequence[np.ndarray],
    probability: float,
    later_probabilities: Sequence[float],
) -> tuple[np.ndarray, np.ndarray] | None:
    """A failing state's (serving order, caps): its own plan first, and within the admitted and the shed
    groups the order that keeps the most value over the state itself and the scenarios that contain it
    (``later``), each weighted by its probability (their ratio is the joint model's conditional
    probability of that escalation given the observed state); the caps are :func:`admission_caps` for
    that order. None when nothing contains the state."""
    if not later:
        return None
    return _best_order(
        problem,
        admission_caps(problem, plan),
        plan,
        [problem, *later],
        [np.asarray(plan), *later_plans],
        [admission_caps(problem, plan), *later_caps],
        [probability, *later_probabilities],
    )


def containing(scenarios: Sequence) -> dict[int, list[int]]:
    """Per failing scenario (by index; not normal, not the fallback), the other failing scenarios that
    contain it (:func:`contains` on the effective down sets and the degraded roots)."""
    rest = [i for i, s in enumerate(scenarios) if s.key not in (NORMAL_KEY, FALLBACK_KEY)]
    return {
        i: [
            j
            for j in rest
            if j != i
            and contains(
                scenarios[j].effective_down, scenarios[j].degraded, scenarios[i].effective_down, scenarios[i].degraded
            )
        ]
        for i in rest
    }
