"""Switching costs: what changing a workload's admitted share costs: one rule for the solver and the backtest.

Draining a share of a workload loses the work in flight; admitting a share again costs a
warm-up (caches, connection pools, JIT) during which the new share serves nothing. Per
workload ``w`` with value ``v_w`` per hour at full admission, a change of its realized level
from ``k`` to ``k'`` (of ``L`` levels) costs, in value::

    v_w / 3600 * ( |k' - k| / L * switch_cost_s_w  +  max(k' - k, 0) / L * warmup_s_w )

Both seconds come from the optional workload columns ``switch_cost_s`` and ``warmup_s``; a
missing column or a null cell takes the default, drawn from the workload's criticality
``tier`` (0 = most critical, the heavier, more stateful services)::

    switch_cost_s = 30                     one drain interval of in-flight work
    warmup_s      = 60 * (4 - tier)        240 s for tier 0 .. 60 s for tier 3

The backtest charges it on *realized* levels (what actually ran), so a workload stopped by a
dependency outage and restarted afterwards pays the same for every policy; the time-coupled
shedding plan (:mod:`policies.shedding.horizon`) weighs the same rule per level
(:meth:`SwitchCosts.per_level`). Top-level, not in a family or the backtest, so both read it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

__all__ = ["SwitchCosts", "switch_costs", "DEFAULT_SWITCH_COST_S", "SWITCH_COLUMNS", "default_warmup_s"]

DEFAULT_SWITCH_COST_S = 30.0
SWITCH_COLUMNS = ("switch_cost_s", "warmup_s")  # optional workload columns, seconds >= 0


def default_warmup_s(tier: np.ndarray) -> np.ndarray:
    """The warm-up default per workload: 60 s times (4 - tier), tier clipped to 0..3."""
    return 60.0 * (4.0 - np.clip(np.asarray(tier, dtype=np.float64), 0.0, 3.0))


@dataclass(frozen=True, eq=False)
class SwitchCosts:
    """Per-workload cost rates in sorted-id order; :meth:`charge` prices a change of levels."""

    workload_ids: tuple[str, ...]
    value_per_hour: np.ndarray
    switch_cost_s: np.ndarray
    warmup_s: np.ndarray
    levels: int

    def charge(self, before: np.ndarray, after: np.ndarray) -> float:
        """The value lost by moving from realized levels ``before`` to ``after`` (one vector each)."""
        return float(self.charge_many(np.asarray(before)[None, :], np.asarray(after)[None, :])[0])

    def per_level(self) -> tuple[np.ndarray, np.ndarray]:
        """(cost of one level down, cost of one level up) per workload: the charge of a change by one level."""
        per_s = self.value_per_hour / 3600.0 / self.levels
        return per_s * self.switch_cost_s, per_s * (self.switch_cost_s + self.warmup_s)

    def charge_many(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        """:meth:`charge` for rows of level vectors (broadcast over leading axes)."""
        d = (np.asarray(after, dtype=np.float64) - np.asarray(before, dtype=np.float64)) / self.levels
        per_s = self.value_per_hour / 3600.0
        return (np.abs(d) * (per_s * self.switch_cost_s) + np.maximum(d, 0.0) * (per_s * self.warmup_s)).sum(axis=-1)


def switch_costs(workloads: pa.Table, *, levels: int) -> SwitchCosts:
    """The switching-cost rates of ``workloads`` (optional columns, defaults as in the module docstring)."""
    wl = workloads.sort_by("workload_id")
    tier = np.asarray(wl.column("tier").to_numpy(zero_copy_only=False), dtype=np.float64)

    def column(name: str, default: np.ndarray) -> np.ndarray:
        if name not in wl.column_names:
            return default
        raw = wl.column(name).to_pylist()
        return np.array([d if x is None else float(x) for x, d in zip(raw, default)], dtype=np.float64)

    n = wl.num_rows
    return SwitchCosts(
        tuple(wl.column("workload_id").to_pylist()),
        np.asarray(wl.column("value_per_hour").to_numpy(zero_copy_only=False), dtype=np.float64),
        column("switch_cost_s", np.full(n, DEFAULT_SWITCH_COST_S)),
        column("warmup_s", default_warmup_s(tier)),
        int(levels),
    )
