"""The hindsight oracle: the best path of decisions over a whole incident, paying the same switching costs.

The oracle knows every true state of the incident in advance and chooses, for every window,
one decision from a candidate set; it is scored by the replay's own rules (realized levels,
switching costs on every realized change, the way back to its normal decision at the end).
The candidates are:

- the portfolio optimum (greedy + CP-SAT) of every distinct true state of the incident;
- every decision any replayed policy made in the incident (window -1 included);
- with standby (:mod:`policies.backtest.standby`): the state optima again with every standby
  placement a replayed policy held. A decision carries its placement, so the oracle may hold a
  placement only in the segments where it pays (its cost is charged per window held): a relaxation
  of "placed for the whole incident", which keeps it an upper bound.

Before and after the incident the oracle holds one *normal* decision, chosen among the
policies' normal decisions and the optimum of the normal state (its value lies outside the
incident, so only the switches it causes count).

A dynamic programme finds the best path exactly over that set. Windows with the same true
state are one segment: within a segment every candidate earns at a constant rate, so a
switch inside a segment is never better than at its boundary and the programme works per
segment. Because every replayed policy's own path (its normal decision, then its decisions
window by window) is one of the paths searched, with identical value and costs, **no
replayed policy can beat the oracle** and avoidable loss (loss minus the oracle's) is never
negative. It is not the unrestricted optimum over all level vectors: that is a mixed-integer
programme over the whole incident, and the candidate set is what makes it tractable.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from policies.backtest.costs import SwitchCosts
from policies.backtest.policies import Decision
from policies.backtest.replay import PolicyRun, Realizer, View, standby_arrays

__all__ = ["hindsight_oracle"]


def _unique(decisions) -> list[Decision]:
    seen, out = set(), []
    for d in decisions:
        key = (d.levels.tobytes(), d.priority.tobytes(), d.standby)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def _transitions(costs: SwitchCosts, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """``costs.charge_many`` of every (before row, after row) pair, [len(before), len(after)].

    Many candidates realize the same levels in a state, so the charge is computed once per pair of
    distinct rows and spread: the same numbers as the full [C, C, W] product (each charge is the
    same sum over one row of W), in a fraction of the time and memory when C is large."""
    ub, ib = np.unique(before, axis=0, return_inverse=True)
    ua, ia = np.unique(after, axis=0, return_inverse=True)
    distinct = costs.charge_many(ub[:, None, :], ua[None, :, :])
    return distinct[np.ravel(ib)][:, np.ravel(ia)]


def hindsight_oracle(
    truth: Sequence[View],
    normal: View,
    candidates: Sequence[Decision],
    normals: Sequence[Decision],
    costs: SwitchCosts,
    hours_per_window: float,
    realize: Realizer | None = None,
) -> PolicyRun:
    """The best path over ``candidates`` (see the module docstring); ``normals`` are the possible normal decisions."""
    realize = realize or Realizer()
    cands = _unique(list(normals) + list(candidates))
    starts = _unique(normals)
    bounds = [0] + [t for t in range(1, len(truth)) if truth[t].key != truth[t - 1].key] + [len(truth)]
    segs = [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]
    R, V = [], []
    for a, _ in segs:  # realized levels [cands, W] and value per hour [cands] per segment
        pairs = [realize(truth[a], d) for d in cands]
        R.append(np.stack([k for k, _ in pairs]))
        V.append(np.array([v for _, v in pairs], dtype=np.float64))
    # Every start runs the same programme from its own first score: all starts at once, [starts, cands]
    # (each entry the very sum and argmax the start would compute alone).
    k0s = [realize(normal, s0)[0] for s0 in starts]
    width = [b - a for a, b in segs]
    score = np.stack([V[0] * width[0] * hours_per_window - costs.charge_many(k0[None, :], R[0]) for k0 in k0s])
    back = []
    for i in range(1, len(segs)):
        total = score[:, :, None] - _transitions(costs, R[i - 1], R[i])[None, :, :]  # [starts, from, to]
        arg = np.argmax(total, axis=1)  # ties: the first candidate, deterministic
        back.append(arg)
        score = np.take_along_axis(total, arg[:, None, :], axis=1)[:, 0, :] + V[i] * width[i] * hours_per_window
    best_total, best_path, best_start = -np.inf, None, None
    for n, (s0, k0) in enumerate(zip(starts, k0s)):
        final = score[n] - costs.charge_many(R[-1], k0[None, :])
        j = int(np.argmax(final))
        if final[j] > best_total + 1e-9:
            path = [j]
            for arg in reversed(back):
                path.append(int(arg[n, path[-1]]))
            best_total, best_path, best_start = float(final[j]), path[::-1], s0
    decisions = [cands[best_path[i]] for i, (a, b) in enumerate(segs) for _ in range(a, b)]
    k0, _ = realize(normal, best_start)
    values, switch, realized, parts, prev = [], [], [], [], k0
    for i, (a, b) in enumerate(segs):  # one decision per segment of one true state
        k, v = realize(truth[a], cands[best_path[i]])
        values += [v] * (b - a)
        parts += [realize.standby(truth[a], cands[best_path[i]])] * (b - a)
        switch += [costs.charge(prev, k)] + [0.0] * (b - a - 1)
        realized += [k] * (b - a)
        prev = k
    switch[-1] += costs.charge(prev, k0)
    return PolicyRun(
        np.asarray(values, dtype=np.float64),
        np.asarray(switch, dtype=np.float64),
        realized,
        [d.levels for d in decisions],
        best_start,
        decisions,
        *standby_arrays(parts, decisions),
    )
