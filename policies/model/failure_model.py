"""How each dependency fails, estimated from noisy health checks.

Checks become one state per (window, service) in :mod:`policies.model.states` (windowing, probe
agreement, gaps carried forward, hysteresis). From those states, per dependency:

- ``p_down`` / ``p_degraded``: the mean of the Beta posterior over the share of windows in that
  state (``Beta(a + n, b + windows - n)``).
- ``p_down_lo`` / ``p_down_hi`` (and ``p_degraded_lo/hi``): a credible interval that is honest
  about autocorrelation. Windows are not independent draws: one 3-hour outage is 180 down
  windows but a single event. So the interval comes from the *episodes*: the dependency is an
  alternating two-state process with a failure rate ``lambda`` (entries per minute spent outside
  the state) and a recovery rate ``mu`` (exits per minute spent in it). With the conjugate
  Gamma posteriors ``lambda ~ Gamma(0.5 + entries, T_out)`` (Jeffreys) and
  ``mu ~ Gamma(1 + exits, m0 + T_in)`` (one pseudo-episode of length ``m0``, the median of all
  completed episodes, so a dependency never seen down still has a finite recovery rate), the
  long-run share
  ``p = lambda / (lambda + mu)`` has a closed-form posterior:
  ``X = T_out lambda / (T_out lambda + (m0 + T_in) mu) ~ Beta(0.5 + entries, 1 + exits)`` and
  ``p = c X / (1 - X + c X)`` with ``c = (m0 + T_in) / T_out``, monotone in ``X``, so the
  interval's ends are transformed Beta quantiles. Its width is driven by the number of episodes,
  not of windows. The naive per-window interval is kept as ``p_down_window_lo/hi`` for contrast.
- ``failure_rate_per_min`` / ``recovery_rate_per_min``: the posterior means of ``lambda`` and
  ``mu`` for the down state: the parameters of the runtime health score (:mod:`qres_client.health`).
- Outage episodes (maximal runs of down windows; episodes cut by ``start`` or ``end`` count
  with their observed length), their rate per day and time to recover (p50, p90, p99).

Joint behaviour (co-failure, its significance and the graph) is in :mod:`policies.model.joint`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy.special import betaincinv

from policies.graph import hard_dependents
from policies.model.joint import summarize_co_failure
from policies.model.states import (
    AGREEMENT_RULES,
    DEGRADED,
    DOWN,
    UP,
    apply_hysteresis,
    count_transitions,
    fill_gaps,
    find_runs,
    hysteresis_length,
    observe_windows,
)
from policies.model.window_grid import WindowGrid, observe_from_grids

__all__ = ["FailureModel", "fit_failure_model", "list_outages", "UP", "DEGRADED", "DOWN"]

_TTR_QUANTILES = (0.5, 0.9, 0.99)
_DEFAULT_EPISODE_MIN = 60.0  # pooled episode length when no episode at all was observed


@dataclass(frozen=True, eq=False)
class FailureModel:
    """The fitted failure model.

    ``states[w, j]`` is the state (``UP``/``DEGRADED``/``DOWN``) of ``services[j]`` in window
    ``w``, which covers ``[start + w * window_min, start + (w + 1) * window_min)``.
    ``per_dependency`` has one row per service (sorted); ``co_failure`` one row per pair
    ``a < b`` that went down together in some window or shared an incident.
    """

    window_min: int
    start: pd.Timestamp
    end: pd.Timestamp
    services: tuple[str, ...]
    states: np.ndarray
    per_dependency: pd.DataFrame
    co_failure: pd.DataFrame
    info: dict = field(default_factory=dict)


def fit_failure_model(
    services: pa.Table,
    dependencies: pa.Table,
    health_checks: pa.Table,
    incidents: pa.Table | None = None,
    *,
    window_min: int = 1,
    hysteresis_windows: int = 2,
    hysteresis_min: float = 0.0,
    agreement: str = "majority",
    credible: float = 0.95,
    prior: tuple[float, float] = (0.5, 0.5),
    alpha: float = 0.05,
    grids: Sequence[WindowGrid] | None = None,
) -> FailureModel:
    """Fit per-dependency and joint failure statistics from the health checks.

    ``dependencies`` gives the hard edges that mark co-failing pairs as explained by the graph.
    ``incidents`` only feed ``incidents_joint``; every incident passed in is counted, whatever its
    time. ``alpha`` is the family-wise level of the co-failure significance test. ``grids``:
    the window grids of the files ``health_checks`` was concatenated from (cached per file,
    policies/window_grid.py); when given and their rows add up, the checks are not scanned.
    """
    _check_params(window_min, credible, prior, alpha, agreement)
    window_min = int(window_min)
    k = hysteresis_length(hysteresis_windows, hysteresis_min, window_min)
    names = tuple(sorted(set(services.column("service_id").to_pylist())))
    observed = None
    if (
        grids
        and all(g.window_min == window_min for g in grids)
        and sum(g.rows for g in grids) == health_checks.num_rows
    ):
        observed = observe_from_grids(grids, names, agreement)
    observed, start_ms, rows = observed or observe_windows(health_checks, names, window_min, agreement)
    filled = fill_gaps(observed)
    states = apply_hysteresis(filled, k)
    states.flags.writeable = False

    n_windows = states.shape[0]
    kinds = dict(zip(services.column("service_id").to_pylist(), services.column("kind").to_pylist()))
    per_dep = _summarize_services(states, names, kinds, window_min, credible, prior)
    edges = zip(
        dependencies.column("service_id").to_pylist(),
        dependencies.column("depends_on").to_pylist(),
        dependencies.column("hard").to_pylist(),
    )
    recovery_per_window = np.minimum(per_dep["recovery_rate_per_min"].to_numpy() * window_min, 1.0)
    co = summarize_co_failure(states == DOWN, names, incidents, hard_dependents(edges), recovery_per_window, alpha)
    raw, kept = count_transitions(filled), count_transitions(states)
    info = {
        "rows": rows,
        "windows": n_windows,
        "cells_observed": int((observed >= 0).sum()),
        "raw_transitions": raw,
        "filtered_transitions": kept,
        "transitions_removed": raw - kept,
        "hysteresis_windows": k,
        "agreement": agreement,
        "credible": credible,
        "prior": (float(prior[0]), float(prior[1])),
        "alpha": alpha,
        "dependency_rows": dependencies.num_rows,
    }
    window_ms = window_min * 60_000
    return FailureModel(
        window_min=window_min,
        start=pd.Timestamp(start_ms, unit="ms", tz="UTC"),
        end=pd.Timestamp(start_ms + n_windows * window_ms, unit="ms", tz="UTC"),
        services=names,
        states=states,
        per_dependency=per_dep,
        co_failure=co,
        info=info,
    )


def list_outages(model: FailureModel) -> pd.DataFrame:
    """Every down episode: service_id, start, duration_min, censored (sorted by service, then start).

    ``censored`` marks episodes cut by the start or end of the data: their true length is
    unknown (at least ``duration_min``), so averages of recovery time should leave them out.
    """
    col, first, length = find_runs(model.states, DOWN)
    starts = model.start + pd.to_timedelta(first * model.window_min, unit="min")
    n_w = model.states.shape[0]
    return pd.DataFrame(
        {
            "service_id": pd.Series(np.asarray(model.services, dtype=object)[col], dtype=object),
            "start": starts,
            "duration_min": (length * model.window_min).astype(np.float64),
            "censored": (first == 0) | (first + length >= n_w),
        }
    )


def _check_params(window_min: int, credible: float, prior: tuple[float, float], alpha: float, agreement: str) -> None:
    if int(window_min) != window_min or window_min < 1:
        raise ValueError(f"window_min must be a whole number of minutes >= 1, got {window_min!r}")
    if not 0.0 < credible < 1.0:
        raise ValueError(f"credible must be in (0, 1), e.g. 0.95; got {credible!r}")
    if len(prior) != 2 or min(prior) <= 0:
        raise ValueError(f"prior must be two positive Beta parameters (a, b), got {prior!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), e.g. 0.05; got {alpha!r}")
    if agreement not in AGREEMENT_RULES:
        raise ValueError(f"agreement must be one of {', '.join(AGREEMENT_RULES)}; got {agreement!r}")


def _pooled_episode_min(first: np.ndarray, length: np.ndarray, n_w: int, window_min: int) -> float:
    """Median length of the completed episodes of every service (the recovery-rate prior's scale).

    Episodes cut by the start or end of the data are left out: a site that is down throughout
    would otherwise make every other dependency look slow to recover.
    """
    done = (first > 0) & (first + length < n_w)
    return float(np.median(length[done])) * window_min if done.any() else _DEFAULT_EPISODE_MIN


def _episode_posterior(
    in_state: np.ndarray, window_min: int, credible: float, pooled_min: float
) -> tuple[np.ndarray, ...]:
    """Per column: entry rate, exit rate (posterior means, per minute) and the credible interval of
    the long-run share in the state, from the alternating-process model in the module docstring."""
    n_w = in_state.shape[0]
    t_in = in_state.sum(axis=0) * float(window_min)
    t_out = np.maximum(n_w * float(window_min) - t_in, 0.5 * window_min)  # never 0: a service always down
    entries = (in_state[1:] & ~in_state[:-1]).sum(axis=0)
    exits = (in_state[:-1] & ~in_state[1:]).sum(axis=0)
    a_fail, b_fail = 0.5 + entries, t_out
    a_rec, b_rec = 1.0 + exits, pooled_min + t_in
    tail = (1.0 - credible) / 2.0
    c = b_rec / b_fail
    x_lo, x_hi = betaincinv(a_fail, a_rec, tail), betaincinv(a_fail, a_rec, 1.0 - tail)
    return a_fail / b_fail, a_rec / b_rec, c * x_lo / (1 - x_lo + c * x_lo), c * x_hi / (1 - x_hi + c * x_hi)


def _summarize_services(
    states: np.ndarray,
    names: tuple[str, ...],
    kinds: dict,
    window_min: int,
    credible: float,
    prior: tuple[float, float],
) -> pd.DataFrame:
    """One row per service: posteriors of the down and degraded shares, rates, outages, recovery."""
    a, b = prior
    n_w = states.shape[0]
    down = (states == DOWN).sum(axis=0).astype(np.int64)
    degraded = (states == DEGRADED).sum(axis=0).astype(np.int64)
    alpha, beta = a + down, b + (n_w - down)
    tail = (1.0 - credible) / 2.0
    col, first, length = find_runs(states, DOWN)
    durations_min = length.astype(np.float64) * window_min
    pooled_down = _pooled_episode_min(first, length, n_w, window_min)
    pooled_degraded = _pooled_episode_min(*find_runs(states, DEGRADED)[1:], n_w, window_min)
    fail, recover, lo, hi = _episode_posterior(states == DOWN, window_min, credible, pooled_down)
    _, _, g_lo, g_hi = _episode_posterior(states == DEGRADED, window_min, credible, pooled_degraded)
    outages = np.bincount(col, minlength=len(names))
    ttr = np.full((len(names), len(_TTR_QUANTILES)), np.nan)
    mttr = np.full(len(names), np.nan)
    for j in np.unique(col):  # one loop per service that had an outage
        d = durations_min[col == j]
        ttr[j] = np.quantile(d, _TTR_QUANTILES)  # numpy default: linear interpolation
        mttr[j] = d.mean()
    days = n_w * window_min / 1440.0
    return pd.DataFrame(
        {
            "service_id": pd.Series(names, dtype=object),
            "kind": pd.Series([kinds.get(s) for s in names], dtype=object),
            "windows": np.full(len(names), n_w, dtype=np.int64),
            "windows_down": down,
            "windows_degraded": degraded,
            "p_down": alpha / (alpha + beta),
            "p_down_lo": lo,
            "p_down_hi": hi,
            "p_down_window_lo": betaincinv(alpha, beta, tail),
            "p_down_window_hi": betaincinv(alpha, beta, 1.0 - tail),
            "p_degraded": (a + degraded) / (a + b + n_w),
            "p_degraded_lo": g_lo,
            "p_degraded_hi": g_hi,
            "outages": outages.astype(np.int64),
            "outage_rate_per_day": outages / days,
            "failure_rate_per_min": fail,
            "recovery_rate_per_min": recover,
            "ttr_p50_min": ttr[:, 0],
            "ttr_p90_min": ttr[:, 1],
            "ttr_p99_min": ttr[:, 2],
            "mttr_min": mttr,
        }
    )
