"""What changing a workload's admitted share costs: the one default rule the solver and the backtest share.

Draining admitted work loses what was in flight (``switch_cost_s`` of the shed share's value);
admitting more needs a warm-up before the new share earns (``warmup_s`` of its value). The
workload table may carry both as optional columns; a missing column, or a null cell, takes the
default below, so old tables, the sample and the real-history overlays all get the same numbers.

Cost of one level step (``1 / levels`` of the share) of workload w, in value units::

    down_w = value_per_hour_w / levels * switch_cost_s_w / 3600
    up_w   = value_per_hour_w / levels * warmup_s_w / 3600
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

__all__ = [
    "DEFAULT_SWITCH_COST_S",
    "DEFAULT_WARMUP_S",
    "SWITCH_COLUMNS",
    "switching_seconds",
    "level_switch_costs",
]

DEFAULT_SWITCH_COST_S = 120.0  # two minutes of the shed share's value lost to draining
DEFAULT_WARMUP_S = 300.0  # five minutes before a re-admitted share earns (caches, JIT, pools)
SWITCH_COLUMNS = {"switch_cost_s": DEFAULT_SWITCH_COST_S, "warmup_s": DEFAULT_WARMUP_S}


def _column(workloads: pa.Table, name: str, default: float) -> np.ndarray:
    if name not in workloads.column_names:
        return np.full(workloads.num_rows, default, dtype=np.float64)
    raw = workloads.column(name).to_pylist()
    out = np.array([default if v is None else float(v) for v in raw], dtype=np.float64)
    if not np.all(np.isfinite(out)) or np.any(out < 0):
        raise ValueError(f"workloads: {name} must be finite seconds >= 0")
    return out


def switching_seconds(workloads: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(switch_cost_s, warmup_s) per row of ``workloads`` in table order, defaults where absent."""
    return tuple(_column(workloads, name, default) for name, default in SWITCH_COLUMNS.items())


def level_switch_costs(
    value_per_hour: np.ndarray, levels: int, switch_cost_s: np.ndarray, warmup_s: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(cost of one level down, cost of one level up) per workload, by the module's rule."""
    per_level_s = np.asarray(value_per_hour, dtype=np.float64) / levels / 3600.0
    return per_level_s * np.asarray(switch_cost_s, dtype=np.float64), per_level_s * np.asarray(warmup_s)
