"""Per-file window grids: the failure model's observation step, file by file and cacheable.

:func:`policies.model.states.observe_windows` reads every health check of the snapshot, yet a
re-solve after an incident adds one day to thirty. What probe agreement needs from the checks
is, per (window, service, probe), the worst status that probe reported there; the worst over
several files is the elementwise max of their grids. So a grid per file, kept by the file's
sha256, and :func:`observe_from_grids` over the grids of all files gives exactly
``observe_windows`` of the concatenated files (tests/policies/test_window_grid.py checks it on
random splits, late rows and overlapping files included).

A grid is dense, ``int8[windows, services, probes]`` with -1 where a probe did not report: one
day of one-minute windows, 40 services and 2 probes is 115 KB. Files too sparse for that (long
spans, few checks) get no grid and the caller falls back to ``observe_windows``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from policies.errors import DataValidationError, RuleViolation
from policies.model.states import AGREEMENT_RULES, DEGRADED, DOWN, MS_PER_MIN, _combine, _encode, to_epoch_ms
from policies.schema import HEALTH_CHECKS, STATUSES

__all__ = ["WindowGrid", "window_grid", "observe_from_grids"]

_COLUMNS = ("ts", "service_id", "probe", "status")


@dataclass(frozen=True, eq=False)
class WindowGrid:
    window_min: int
    window0: int  # epoch-aligned index (ts // window) of the first window
    services: tuple[str, ...]
    probes: tuple[str, ...]
    worst: np.ndarray  # int8 [windows, services, probes]; -1 where the probe reported nothing
    service_rows: np.ndarray  # int64 [services]: checks per service (counts in error messages)

    @property
    def rows(self) -> int:
        return int(self.service_rows.sum())


def _dense_enough(cells: int, rows: int) -> bool:
    return cells <= max(4 * rows, 1 << 20)  # the threshold observe_windows uses for its dense path


def window_grid(checks: pa.Table, window_min: int) -> WindowGrid | None:
    """The grid of one file's checks; None when it has no rows, a null key, or is too sparse."""
    if checks.num_rows == 0 or any(c not in checks.column_names or checks.column(c).null_count for c in _COLUMNS):
        return None  # observe_windows names these (at least one row, nulls) on the full path
    try:  # a CSV file's timestamps are text until cast
        checks = checks.select(_COLUMNS).cast(pa.schema([HEALTH_CHECKS.field(c) for c in _COLUMNS]))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    status = _encode(checks.column("status"), STATUSES, "status", "status in " + "|".join(STATUSES)).astype(np.int8)
    services = tuple(sorted(pc.unique(checks.column("service_id")).to_pylist()))
    probes = tuple(sorted(pc.unique(checks.column("probe")).to_pylist()))
    svc = _encode(checks.column("service_id"), services, "service_id", "service_id in services")
    probe = _encode(checks.column("probe"), probes, "probe", "probe not null")
    window = to_epoch_ms(checks.column("ts")) // (int(window_min) * MS_PER_MIN)
    window0 = int(window.min())
    n_w, n_s, n_p = int(window.max()) - window0 + 1, len(services), len(probes)
    if not _dense_enough(n_w * n_s * n_p, checks.num_rows):
        return None
    key = ((window - window0) * n_s + svc) * n_p + probe
    worst = np.full(n_w * n_s * n_p, -1, dtype=np.int8)
    for level in range(len(STATUSES)):  # ascending: the last write per cell is its worst status
        worst[key[status >= level]] = level
    return WindowGrid(
        int(window_min),
        window0,
        services,
        probes,
        worst.reshape(n_w, n_s, n_p),
        np.bincount(svc, minlength=n_s).astype(np.int64),
    )


def observe_from_grids(
    grids: Sequence[WindowGrid], names: tuple[str, ...], agreement: str = "majority"
) -> tuple[np.ndarray, int, int] | None:
    """``observe_windows`` of the files behind ``grids``: ``(observed, start_ms, rows)``.

    None when the combined grid would be too sparse (files far apart in time); the caller
    then runs ``observe_windows`` on the checks.
    """
    if agreement not in AGREEMENT_RULES:
        raise ValueError(f"agreement must be one of {', '.join(AGREEMENT_RULES)}; got {agreement!r}")
    if not grids:
        raise DataValidationError([RuleViolation("health_checks", None, "at least one row", count=0)])
    if len({g.window_min for g in grids}) != 1:
        raise ValueError("grids of different window lengths cannot be combined")
    at = {name: i for i, name in enumerate(names)}
    bad = sorted({s for g in grids for s in g.services if s not in at})
    if bad:
        count = sum(int(g.service_rows[i]) for g in grids for i, s in enumerate(g.services) if s not in at)
        raise DataValidationError([RuleViolation("health_checks", "service_id", "service_id in services", bad, count)])
    probes = tuple(sorted({p for g in grids for p in g.probes}))
    rows = sum(g.rows for g in grids)
    window0 = min(g.window0 for g in grids)
    n_w = max(g.window0 + g.worst.shape[0] for g in grids) - window0
    n_s, n_p = len(names), len(probes)
    if not _dense_enough(n_w * n_s * n_p, rows):
        return None
    grid = np.full((n_w, n_s, n_p), -1, dtype=np.int8)
    for g in grids:
        rows_at = slice(g.window0 - window0, g.window0 - window0 + g.worst.shape[0])
        if g.services == names and g.probes == probes:  # the usual file: one contiguous slab
            np.maximum(grid[rows_at], g.worst, out=grid[rows_at])
        else:
            index = np.ix_(
                np.arange(rows_at.start, rows_at.stop),
                np.array([at[s] for s in g.services], dtype=np.intp),
                np.array([probes.index(p) for p in g.probes], dtype=np.intp),
            )
            grid[index] = np.maximum(grid[index], g.worst)
    observed = _agree(grid.reshape(n_w * n_s, n_p), agreement).reshape(n_w, n_s)
    return observed, window0 * grids[0].window_min * MS_PER_MIN, rows


def _agree(worst: np.ndarray, agreement: str) -> np.ndarray:
    """Per cell (row), the agreed state of its probes' worst statuses (columns; -1: no report).

    With few probes every combination is enumerated once and looked up (one pass over the
    cells instead of a handful of temporaries per probe).
    """
    n_p = worst.shape[1]
    if n_p <= 6:
        combos = np.array(list(itertools.product(range(-1, 3), repeat=n_p)), dtype=np.int8).reshape(-1, n_p)
        table = _agree_counted(combos, agreement)
        code = np.zeros(worst.shape[0], dtype=np.int16)
        for j in range(n_p):  # the row of ``combos`` a cell's probes match (base 4, first probe most significant)
            code *= 4
            code += worst[:, j]
            code += 1
        return table[code]
    return _agree_counted(worst, agreement)


def _agree_counted(worst: np.ndarray, agreement: str) -> np.ndarray:
    n_probes = (worst >= 0).sum(axis=1)
    n_down = (worst == DOWN).sum(axis=1)
    n_bad = (worst >= DEGRADED).sum(axis=1)
    worst_state = np.where(n_down > 0, DOWN, np.where(n_bad > 0, DEGRADED, 0))
    best = np.where(n_down == n_probes, DOWN, np.where(n_bad == n_probes, DEGRADED, 0))
    return np.where(n_probes > 0, _combine(n_probes, n_down, n_bad, best, worst_state, agreement), -1).astype(np.int8)
