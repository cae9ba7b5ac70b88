"""How each dependency fails, estimated from noisy health checks.

The steps, all vectorized (one sort of the checks, then dense ``[window, service]`` arrays):

1. **Windowing**: each check falls in the window ``floor(ts / window_min)``; windows are aligned
   to the epoch, ``start`` is the first window holding a check and ``end`` is exclusive.
2. **Probe agreement**: a probe's status in a window is its worst check there. Of the probes
   that reported in a window, a service is *down* when more than half say down, else
   *degraded* when at least half say degraded or down, else *up*. So with two probes, one probe
   saying down while the other says up reads as degraded (a disagreement), not as an outage;
   a lone reporting probe decides alone.
3. **Gaps**: a window where a service has no check carries its previous state forward; before
   its first check a service counts as up.
4. **Hysteresis**: a state change counts only when the new state lasts ``hysteresis_windows``
   consecutive windows; shorter runs are absorbed into the last accepted state (the state before
   the first window counts as up). This is a batch (non-causal) filter: an accepted run keeps
   its full length, it is not shortened by the ``k - 1`` windows a live detector would need.

Per dependency, ``p_down`` is the mean of the Beta posterior over the share of down windows
(``Beta(a + down, b + windows - down)``), with an equal-tailed credible interval. Windows are
treated as independent draws, so the interval is narrower than the truth for long outages:
read it as a ranking aid, not a calibrated guarantee. Outage episodes are maximal runs of down
windows; episodes cut by ``start`` or ``end`` are counted with their observed length only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy.special import betaincinv

from policies.errors import DataValidationError, RuleViolation
from policies.schema import STATUSES

__all__ = ["FailureModel", "fit_failure_model", "list_outages", "UP", "DEGRADED", "DOWN"]

UP, DEGRADED, DOWN = 0, 1, 2  # codes in FailureModel.states, in the order of schema.STATUSES
_MS_PER_MIN = 60_000
_TTR_QUANTILES = (0.5, 0.9, 0.99)


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
    credible: float = 0.95,
    prior: tuple[float, float] = (0.5, 0.5),
) -> FailureModel:
    """Fit per-dependency and joint failure statistics from the health checks.

    ``dependencies`` is accepted so every estimate step has the same inputs; the fit itself does
    not use the graph (scenarios apply it). ``incidents`` only feed ``incidents_joint``; every
    incident passed in is counted, whatever its time.
    """
    _check_params(window_min, hysteresis_windows, credible, prior)
    window_min, hysteresis_windows = int(window_min), int(hysteresis_windows)
    names = tuple(sorted(set(services.column("service_id").to_pylist())))
    observed, start_ms, rows = _observe_windows(health_checks, names, window_min)
    filled = _fill_gaps(observed)
    states = _apply_hysteresis(filled, hysteresis_windows)
    states.flags.writeable = False

    n_windows = states.shape[0]
    window_ms = window_min * _MS_PER_MIN
    kinds = dict(zip(services.column("service_id").to_pylist(), services.column("kind").to_pylist()))
    per_dep = _summarize_services(states, names, kinds, window_min, credible, prior)
    co = _summarize_co_failure(states, names, incidents)
    raw, kept = _count_transitions(filled), _count_transitions(states)
    info = {
        "rows": rows,
        "windows": n_windows,
        "cells_observed": int((observed >= 0).sum()),
        "raw_transitions": raw,
        "filtered_transitions": kept,
        "transitions_removed": raw - kept,
        "hysteresis_windows": hysteresis_windows,
        "credible": credible,
        "prior": (float(prior[0]), float(prior[1])),
        "dependency_rows": dependencies.num_rows,
    }
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
    """Every down episode: service_id, start, duration_min (sorted by service, then start)."""
    col, first, length = _find_runs(model.states, DOWN)
    starts = model.start + pd.to_timedelta(first * model.window_min, unit="min")
    return pd.DataFrame(
        {
            "service_id": pd.Series(np.asarray(model.services, dtype=object)[col], dtype=object),
            "start": starts,
            "duration_min": (length * model.window_min).astype(np.float64),
        }
    )


def _check_params(window_min: int, k: int, credible: float, prior: tuple[float, float]) -> None:
    if int(window_min) != window_min or window_min < 1:
        raise ValueError(f"window_min must be a whole number of minutes >= 1, got {window_min!r}")
    if int(k) != k or k < 1:
        raise ValueError(f"hysteresis_windows must be an integer >= 1 (1 = no filtering), got {k!r}")
    if not 0.0 < credible < 1.0:
        raise ValueError(f"credible must be in (0, 1), e.g. 0.95; got {credible!r}")
    if len(prior) != 2 or min(prior) <= 0:
        raise ValueError(f"prior must be two positive Beta parameters (a, b), got {prior!r}")


def _encode(column: pa.ChunkedArray, values: tuple[str, ...], name: str, rule: str) -> np.ndarray:
    """Index of each value of ``column`` in ``values``; unknown or null values fail the fit."""
    idx = pc.index_in(column, value_set=pa.array(values, pa.string()))
    if idx.null_count:
        bad = pc.unique(pc.filter(column, pc.is_null(idx))).to_pylist()
        raise DataValidationError([RuleViolation("health_checks", name, rule, bad, idx.null_count)])
    return idx.to_numpy().astype(np.int64)


def _to_epoch_ms(column: pa.ChunkedArray) -> np.ndarray:
    """Timestamps of any unit as int64 milliseconds since the epoch (UTC)."""
    per_ms = {"s": None, "ms": 1, "us": 1_000, "ns": 1_000_000}[column.type.unit]
    raw = column.cast(pa.int64()).to_numpy()
    return raw * 1_000 if per_ms is None else raw // per_ms


def _observe_windows(checks: pa.Table, names: tuple[str, ...], window_min: int) -> tuple[np.ndarray, int, int]:
    """Probe-agreement state per (window, service): int8 matrix, -1 where nothing reported."""
    if checks.num_rows == 0:
        raise DataValidationError([RuleViolation("health_checks", None, "at least one row", count=0)])
    ts = _to_epoch_ms(checks.column("ts"))
    window_ms = window_min * _MS_PER_MIN
    start_ms = int(ts.min()) // window_ms * window_ms
    win = (ts - start_ms) // window_ms
    n_windows, n_s = int(win.max()) + 1, len(names)
    svc = _encode(checks.column("service_id"), names, "service_id", "service_id in services")
    status = _encode(checks.column("status"), STATUSES, "status", "status in " + "|".join(STATUSES))
    probes = tuple(sorted(p for p in pc.unique(checks.column("probe")).to_pylist() if p is not None))
    probe = _encode(checks.column("probe"), probes, "probe", "probe not null")

    # One sort: key = (cell, probe, status). The last row of each (cell, probe) is its worst status.
    cell = win * n_s + svc
    key = np.sort((cell * len(probes) + probe) * 3 + status)  # np.sort: much faster than np.unique here
    cp, worst = key // 3, key % 3
    last = np.r_[cp[1:] != cp[:-1], True]
    cell_p, worst = cp[last] // len(probes), worst[last]
    bounds = np.flatnonzero(np.r_[True, cell_p[1:] != cell_p[:-1]])
    n_probes = np.diff(np.r_[bounds, cell_p.size])
    n_down = np.add.reduceat((worst == DOWN).astype(np.int64), bounds)
    n_bad = np.add.reduceat((worst >= DEGRADED).astype(np.int64), bounds)
    state = np.where(2 * n_down > n_probes, DOWN, np.where(2 * n_bad >= n_probes, DEGRADED, UP))

    observed = np.full((n_windows, n_s), -1, dtype=np.int8)
    cells = cell_p[bounds]
    observed[cells // n_s, cells % n_s] = state
    return observed, start_ms, checks.num_rows


def _fill_gaps(observed: np.ndarray) -> np.ndarray:
    """Carry each service's last observed state forward; up before its first check."""
    rows = np.arange(observed.shape[0])[:, None]
    last_seen = np.maximum.accumulate(np.where(observed >= 0, rows, 0), axis=0)
    filled = np.take_along_axis(observed, last_seen, axis=0)
    return np.where(filled < 0, UP, filled).astype(np.int8)


def _apply_hysteresis(states: np.ndarray, k: int) -> np.ndarray:
    """Absorb runs shorter than ``k`` into the last accepted state (up before the first window).

    A run of length >= k is always accepted, and a short run always shows the last long run's
    state, so the output of each run is the value of the most recent long run in its column.
    """
    if k <= 1:
        return states.copy()
    n_w, n_s = states.shape
    flat = np.ascontiguousarray(states.T).ravel()  # one service after another
    change = np.r_[True, flat[1:] != flat[:-1]]
    change[::n_w] = True  # a new service starts a new run
    starts = np.flatnonzero(change)
    lengths = np.diff(np.r_[starts, flat.size])
    values = flat[starts]
    run_ids = np.arange(starts.size)
    last_long = np.maximum.accumulate(np.where(lengths >= k, run_ids, -1))
    first_run_of_col = np.searchsorted(starts, (starts // n_w) * n_w)
    valid = last_long >= first_run_of_col  # a long run exists earlier in the same service
    out = np.where(valid, values[np.maximum(last_long, 0)], UP).astype(np.int8)
    return np.repeat(out, lengths).reshape(n_s, n_w).T.copy()


def _count_transitions(states: np.ndarray) -> int:
    """State changes between consecutive windows, summed over services."""
    return int((states[1:] != states[:-1]).sum())


def _find_runs(states: np.ndarray, value: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximal runs of ``value`` per column: (column, first window, length), column-major order."""
    n_w, n_s = states.shape
    padded = np.zeros((n_s, n_w + 2), dtype=np.int8)
    padded[:, 1:-1] = (states == value).T
    edges = np.diff(padded, axis=1)
    col, first = np.nonzero(edges == 1)
    _, stop = np.nonzero(edges == -1)
    return col, first, stop - first


def _summarize_services(
    states: np.ndarray,
    names: tuple[str, ...],
    kinds: dict,
    window_min: int,
    credible: float,
    prior: tuple[float, float],
) -> pd.DataFrame:
    """One row per service: Beta posterior of the down share, outage counts and time to recover."""
    a, b = prior
    n_w = states.shape[0]
    down = (states == DOWN).sum(axis=0).astype(np.int64)
    degraded = (states == DEGRADED).sum(axis=0).astype(np.int64)
    alpha, beta = a + down, b + (n_w - down)
    tail = (1.0 - credible) / 2.0
    col, _, length = _find_runs(states, DOWN)
    durations_min = length.astype(np.float64) * window_min
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
            "p_down_lo": betaincinv(alpha, beta, tail),
            "p_down_hi": betaincinv(alpha, beta, 1.0 - tail),
            "p_degraded": (a + degraded) / (a + b + n_w),
            "outages": outages.astype(np.int64),
            "outage_rate_per_day": outages / days,
            "ttr_p50_min": ttr[:, 0],
            "ttr_p90_min": ttr[:, 1],
            "ttr_p99_min": ttr[:, 2],
            "mttr_min": mttr,
        }
    )


def _count_incident_pairs(incidents: pa.Table | None, names: tuple[str, ...]) -> np.ndarray:
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


def _summarize_co_failure(states: np.ndarray, names: tuple[str, ...], incidents: pa.Table | None) -> pd.DataFrame:
    """Pairs of services that were each down at least once and went down together."""
    n_w = states.shape[0]
    down = states == DOWN
    counts = down.sum(axis=0)
    ever = np.flatnonzero(counts > 0)
    d = down[:, ever].astype(np.float64)  # BLAS; exact for counts below 2**53
    joint = np.rint(d.T @ d).astype(np.int64)
    inc = _count_incident_pairs(incidents, names)[np.ix_(ever, ever)]
    ia, ib = np.triu_indices(ever.size, k=1)
    wj, ij = joint[ia, ib], inc[ia, ib]
    keep = (wj > 0) | (ij > 0)
    ia, ib, wj, ij = ia[keep], ib[keep], wj[keep], ij[keep]
    p_a, p_b = counts[ever[ia]] / n_w, counts[ever[ib]] / n_w
    p_joint = wj / n_w
    denom = p_a * p_b
    lift = np.divide(p_joint, denom, out=np.full(p_joint.shape, np.nan), where=denom > 0)
    names_arr = np.asarray(names, dtype=object)
    out = pd.DataFrame(
        {
            "a": pd.Series(names_arr[ever[ia]], dtype=object),
            "b": pd.Series(names_arr[ever[ib]], dtype=object),
            "windows_joint": wj.astype(np.int64),
            "p_joint": p_joint,
            "p_a": p_a,
            "p_b": p_b,
            "lift": lift,
            "incidents_joint": ij.astype(np.int64),
        }
    )
    out = out.sort_values(["lift", "a", "b"], ascending=[False, True, True], na_position="last", kind="mergesort")
    return out.reset_index(drop=True)
