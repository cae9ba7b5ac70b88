"""Switching costs as the backtest charges them: the rule lives in :mod:`policies.switching` (shared with
the time-coupled shedding plan); these names stay importable from here."""

from __future__ import annotations

from policies.switching import DEFAULT_SWITCH_COST_S, SwitchCosts, default_warmup_s, switch_costs

__all__ = ["SwitchCosts", "switch_costs", "DEFAULT_SWITCH_COST_S", "default_warmup_s"]
