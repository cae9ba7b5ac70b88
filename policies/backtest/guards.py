"""Refusals of a backtest whose question is empty: nothing to replay, or no choice that matters.

A backtest with no held-out incident reports an empty ``overall``; one where capacity never
binds (every runnable workload fits in every replayed state, and none carries risk) scores
every policy that admits everything at 100% of the oracle. Both would read as a perfect
score. :func:`guard_replay` raises :class:`~policies.errors.NothingToLearnError` naming the
cause instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from policies.backtest.replay import Incident, StateCatalog
from policies.errors import NothingToLearnError
from policies.model.failure_model import FailureModel
from policies.model.guards import require_outages
from policies.model.states import UP

__all__ = ["guard_replay"]


def guard_replay(
    full: FailureModel, incidents: Sequence[Incident], split_at: pd.Timestamp, catalog: StateCatalog
) -> None:
    """Refuse (NothingToLearnError) unless some held-out incident exists and some replayed choice matters."""
    require_outages(full, "a policy or replay incidents")
    if not incidents:
        before = int(np.asarray(full.states != UP).any(axis=1).sum())
        raise NothingToLearnError(
            f"refused: no incident starts after the split at {split_at:%Y-%m-%d %H:%M} UTC "
            f"(history {full.start:%Y-%m-%d} .. {full.end:%Y-%m-%d}; {before} window(s) with a service "
            "not up, all before the split or in an outage already under way there): nothing to replay. "
            "Lower backtest.train_fraction or import a longer history."
        )
    windows = np.concatenate([np.arange(i.start_window, i.end_window) for i in incidents])
    views = catalog.views_of(full.states[np.unique(windows)])
    if not any(_binds(v.problem) for v in views):
        raise NothingToLearnError(
            f"refused: capacity never binds in the {len(incidents)} held-out incident(s): every runnable "
            "workload fits the capacity left and none carries risk, so every policy that admits everything "
            "scores 100% of the oracle and the comparison says nothing. The workloads and capacities are "
            "probably the importer's defaults (one region, demand 85% of capacity): lay a real topology over "
            "the timeline with `qres backtest --overlay DIR` or import with `--overlay DIR`."
        )


def _binds(problem) -> bool:
    run = problem.runnable
    over = float(problem.demand[run].sum()) > problem.capacity + problem.tolerance
    return over or bool(np.any(problem.risk_per_hour[run] > 0))
