"""When a state outlives the horizon its time-coupled plan was solved for: the state's long-run risk sheds.

The time-coupled plan (:mod:`policies.shedding.anticipation`) is solved over the 90% quantile of
the state's remaining duration. A workload whose risk exceeds its value in the state is worth
shedding only if the state lasts long enough to repay the drain now and the warm-up at recovery;
over a short horizon the plan may keep it, and then keeps it for as long as the state lasts (a
state of 4,000 minutes included), although the state's static optimum sheds it.

:func:`late_risk_sheds` adds that shed as a second timed step (``then_admit`` at ``then_after_s``,
the columns of ``qres_client.schema.DECISIONS_SHEDDING_LATE``, applied by the client's Controller):
at the first whole minute from the end of the horizon on at which the history's expected time left
in the state, given the time already spent in it, pays the switch (the same test as
:func:`~policies.shedding.anticipation.risk_shed_after_s`). Only risk sheds move, and only down: a
capacity shed is left to admission control, so the step never needs another serving order.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from policies.shedding.horizon import HorizonProblem

__all__ = ["late_risk_sheds"]


def late_risk_sheds(
    p: HorizonProblem,
    static_levels,
    levels,
    act_after_s,
    remaining_min: Callable[[float], float],
    last_min: int,
) -> tuple[np.ndarray, np.ndarray] | None:
    """(then_levels, then_after_s) per workload, or None when no risk shed waits past the horizon.

    A workload moves when the static optimum (``static_levels``) runs fewer levels of it than the
    timed plan (``levels``) and its value net of this state's risk is negative. It moves at the first
    whole minute t in [horizon, ``last_min``] with ``remaining_min(t)`` x (risk - value) / 60 / L >=
    drain + warm-up per level; never when no such minute exists. The others keep the plan's level and
    time (a step that changes nothing)."""
    b = p.base
    k, static = np.asarray(levels, dtype=np.int64), np.asarray(static_levels, dtype=np.int64)
    then_levels, then_after = k.copy(), np.asarray(act_after_s, dtype=np.float64).copy()
    risky = np.flatnonzero((static < k) & b.runnable & (b.net < 0))
    if risky.size == 0:
        return None
    horizon_min = int(math.ceil(p.steps * p.step_s / 60.0 - 1e-9))
    minutes = np.arange(horizon_min, max(horizon_min, int(last_min)) + 1)
    left = np.array([remaining_min(float(t)) for t in minutes])
    moved = False
    for w in risky:
        pays = np.flatnonzero(left * (-b.net[w]) / 60.0 / b.levels >= p.down_cost[w] + p.up_cost[w])
        if pays.size:
            then_levels[w], then_after[w], moved = static[w], 60.0 * float(minutes[pays[0]]), True
    return (then_levels, then_after) if moved else None
