"""Noisy health checks -> one state per (window, service): windowing, probe agreement, hysteresis.

All steps are vectorized (one sort of the checks, then dense ``[window, service]`` int8 arrays):

1. **Windowing**: each check falls in the window ``floor(ts / window_min)``, by its own
   timestamp, so a check that arrives late still lands in the window it describes. Windows are
   aligned to the epoch; the first window is the first one holding a check.
2. **Probe agreement**: a probe's status in a window is its worst check there. The probes that
   reported in a window are combined by ``agreement``:

   - ``majority`` (default): *down* when more than half say down, else *degraded* when at least
     half say degraded or down, else *up*. With two probes one "down" against one "up" reads as
     degraded (a disagreement), not as an outage; a lone reporting probe decides alone.
   - ``any``: the worst probe wins (sensitive: one probe is enough).
   - ``all``: the best probe wins (strict: every probe must agree it is down).
3. **Gaps**: a window where a service has no check carries its previous state forward; before
   its first check a service counts as up.
4. **Hysteresis**: a state change counts only when the new state lasts ``k`` consecutive
   windows, ``k = max(hysteresis_windows, ceil(hysteresis_min / window_min))`` (so it can be
   given as a count of checks or as a minimum duration). Shorter runs are absorbed into the last
   accepted state (up before the first window). This is a batch (non-causal) filter: an
   accepted run keeps its full length.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from policies.errors import DataValidationError, RuleViolation
from policies.schema import STATUSES

__all__ = [
    "UP",
    "DEGRADED",
    "DOWN",
    "AGREEMENT_RULES",
    "observe_windows",
    "fill_gaps",
    "apply_hysteresis",
    "count_transitions",
    "find_runs",
    "hysteresis_length",
    "to_epoch_ms",
]

UP, DEGRADED, DOWN = 0, 1, 2  # state codes, in the order of schema.STATUSES
AGREEMENT_RULES = ("majority", "any", "all")
MS_PER_MIN = 60_000


def hysteresis_length(hysteresis_windows: int, hysteresis_min: float, window_min: int) -> int:
    """Windows a new state must last: the larger of the count and the minimum duration."""
    if int(hysteresis_windows) != hysteresis_windows or hysteresis_windows < 1:
        raise ValueError(f"hysteresis_windows must be an integer >= 1 (1 = no filtering), got {hysteresis_windows!r}")
    if not hysteresis_min >= 0:
        raise ValueError(
            f"hysteresis_min must be >= 0 minutes (0 = use hysteresis_windows only), got {hysteresis_min!r}"
        )
    return max(int(hysteresis_windows), math.ceil(float(hysteresis_min) / window_min - 1e-9))


def _encode(column: pa.ChunkedArray, values: tuple[str, ...], name: str, rule: str) -> np.ndarray:
    """Index of each value of ``column`` in ``values``; unknown or null values fail the fit."""
    idx = pc.index_in(column, value_set=pa.array(values, pa.string()))
    if idx.null_count:
        bad = pc.unique(pc.filter(column, pc.is_null(idx))).to_pylist()
        raise DataValidationError([RuleViolation("health_checks", name, rule, bad, idx.null_count)])
    return idx.to_numpy()  # int32: 10M-row temporaries cost page faults, keep them small


def to_epoch_ms(column: pa.ChunkedArray) -> np.ndarray:
    """Timestamps of any unit as int64 milliseconds since the epoch (UTC)."""
    per_ms = {"s": None, "ms": 1, "us": 1_000, "ns": 1_000_000}[column.type.unit]
    raw = column.cast(pa.int64()).to_numpy()
    if per_ms == 1:
        return raw if raw.flags.writeable else raw.copy()
    return raw * 1_000 if per_ms is None else raw // per_ms


def observe_windows(
    checks: pa.Table, names: tuple[str, ...], window_min: int, agreement: str = "majority"
) -> tuple[np.ndarray, int, int]:
    """Probe-agreement state per (window, service): int8 matrix, -1 where nothing reported.

    Returns ``(observed, start_ms, rows)``.
    """
    if agreement not in AGREEMENT_RULES:
        raise ValueError(f"agreement must be one of {', '.join(AGREEMENT_RULES)}; got {agreement!r}")
    if checks.num_rows == 0:
        raise DataValidationError([RuleViolation("health_checks", None, "at least one row", count=0)])
    svc = _encode(checks.column("service_id"), names, "service_id", "service_id in services")
    status = _encode(checks.column("status"), STATUSES, "status", "status in " + "|".join(STATUSES)).astype(np.int8)
    probes = tuple(sorted(p for p in pc.unique(checks.column("probe")).to_pylist() if p is not None))
    probe = _encode(checks.column("probe"), probes, "probe", "probe not null")
    n_s, n_p = len(names), len(probes)
    window_ms = window_min * MS_PER_MIN
    key = to_epoch_ms(checks.column("ts"))  # becomes the (window, service, probe) key, in place
    start_ms = int(key.min()) // window_ms * window_ms
    key -= start_ms
    key //= window_ms
    n_windows = int(key.max()) + 1
    key *= n_s
    key += svc
    key *= n_p
    key += probe
    if n_windows * n_s * n_p <= max(4 * checks.num_rows, 1 << 20):
        state, cells = _agree_dense(key, status, n_windows * n_s, n_p, agreement)
    else:  # sparse telemetry (long spans, few checks): sort instead of dense per-cell arrays
        state, cells = _agree_sorted(key, status.astype(np.int64), n_p, agreement)
    observed = np.full((n_windows, n_s), -1, dtype=np.int8)
    observed[cells // n_s, cells % n_s] = state
    return observed, start_ms, checks.num_rows


def _combine(
    n_probes: np.ndarray, n_down: np.ndarray, n_bad: np.ndarray, best: np.ndarray, worst: np.ndarray, agreement: str
) -> np.ndarray:
    """One state per cell from its reporting probes' worst statuses (see the module docstring)."""
    if agreement == "any":
        return worst
    if agreement == "all":
        return best
    return np.where(2 * n_down > n_probes, DOWN, np.where(2 * n_bad >= n_probes, DEGRADED, UP))


def _agree_dense(key: np.ndarray, status: np.ndarray, n_cells: int, n_p: int, agreement: str):
    """Counting path, no sort: a few bincounts over dense ``[cell, probe]`` arrays. Reductions
    over probes loop over the (few) probes: numpy's small-axis reductions are slow."""
    size = n_cells * n_p
    seen = (np.bincount(key, minlength=size) > 0).reshape(n_cells, n_p)
    any_down = (np.bincount(key[status == DOWN], minlength=size) > 0).reshape(n_cells, n_p)
    any_bad = (np.bincount(key[status >= DEGRADED], minlength=size) > 0).reshape(n_cells, n_p)
    n_probes, n_down, n_bad = (np.zeros(n_cells, dtype=np.int16) for _ in range(3))
    for j in range(n_p):
        n_probes += seen[:, j]
        n_down += any_down[:, j]
        n_bad += any_bad[:, j]
    cells = np.flatnonzero(n_probes)
    n_probes, n_down, n_bad = n_probes[cells], n_down[cells], n_bad[cells]
    worst = np.where(n_down > 0, DOWN, np.where(n_bad > 0, DEGRADED, UP))
    # the best reporting probe is down iff all reporting probes are; degraded-or-worse likewise
    best = np.where(n_down == n_probes, DOWN, np.where(n_bad == n_probes, DEGRADED, UP))
    return _combine(n_probes, n_down, n_bad, best, worst, agreement), cells


def _agree_sorted(key: np.ndarray, status: np.ndarray, n_p: int, agreement: str):
    """Sorting path: key = (cell, probe, status); the last row of each (cell, probe) is its worst."""
    key = np.sort(key * 3 + status)  # np.sort: much faster than np.unique here
    cp, worst = key // 3, key % 3
    last = np.r_[cp[1:] != cp[:-1], True]
    cell_p, worst = cp[last] // n_p, worst[last]
    bounds = np.flatnonzero(np.r_[True, cell_p[1:] != cell_p[:-1]])
    state = _combine(
        np.diff(np.r_[bounds, cell_p.size]),
        np.add.reduceat((worst == DOWN).astype(np.int64), bounds),
        np.add.reduceat((worst >= DEGRADED).astype(np.int64), bounds),
        np.minimum.reduceat(worst, bounds),
        np.maximum.reduceat(worst, bounds),
        agreement,
    )
    return state, cell_p[bounds]


def fill_gaps(observed: np.ndarray) -> np.ndarray:
    """Carry each service's last observed state forward; up before its first check."""
    # int32 indices: windows x services int64 was 0.24 GB twice over at 1,000 services (the backtest's fit)
    rows = np.arange(observed.shape[0], dtype=np.int32)[:, None]
    last_seen = np.maximum.accumulate(np.where(observed >= 0, rows, np.int32(0)), axis=0)
    filled = np.take_along_axis(observed, last_seen, axis=0)
    return np.where(filled < 0, UP, filled).astype(np.int8)


def apply_hysteresis(states: np.ndarray, k: int) -> np.ndarray:
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


def count_transitions(states: np.ndarray) -> int:
    """State changes between consecutive windows, summed over services."""
    return int((states[1:] != states[:-1]).sum())


def find_runs(states: np.ndarray, value: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximal runs of ``value`` per column: (column, first window, length), column-major order."""
    n_w, n_s = states.shape
    padded = np.zeros((n_s, n_w + 2), dtype=np.int8)
    padded[:, 1:-1] = (states == value).T
    edges = np.diff(padded, axis=1)
    col, first = np.nonzero(edges == 1)
    _, stop = np.nonzero(edges == -1)
    return col, first, stop - first
