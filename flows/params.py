"""The domain's typed parameters, derived from the settings in one place.

The settings (``flows.settings``) are what a person writes; these are what ``policies/`` takes.
Each derivation lives here once, so the nightly, the re-solve, the backtest and ``qres solve``
hand the domain the same values.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel

from flows.settings import Settings
from policies.solve.anneal import AnnealParams

__all__ = ["anneal_params", "backtest_config", "model_params"]


def model_params(settings: Settings) -> dict[str, Any]:
    """The failure model's keyword arguments (the nightly's fit and `qres model` fit the same way)."""
    m = settings.model
    return {
        "window_min": m.window_min,
        "hysteresis_windows": m.hysteresis_windows,
        "hysteresis_min": m.hysteresis_min,
        "agreement": m.agreement,
        "credible": m.credible,
        "alpha": m.alpha,
    }


def anneal_params(settings: Settings) -> AnnealParams:
    """The annealer settings every family's ``anneal`` solver gets (nightly, re-solve, backtest)."""
    so = settings.solve
    return AnnealParams(sampler=so.sampler, num_reads=so.anneal_num_reads, num_sweeps=so.anneal_num_sweeps)


def backtest_config(settings: Settings):
    """The backtest parameters from the settings (the same model, scenario and solver settings as nightly);
    shared by the nightly flow's backtest step and ``qres backtest``.

    Every field of ``BacktestConfig`` names the setting it reads (``"section.name"``), so this
    only walks them; a settings model (a what-if) becomes its plain dict.
    """
    from policies.backtest.run import BacktestConfig

    derived = {"solve.anneal": anneal_params(settings)}

    def read(path: str) -> Any:
        if path in derived:
            return derived[path]
        value: Any = settings
        for part in path.split("."):
            value = getattr(value, part)
        if isinstance(value, tuple) and value and all(isinstance(v, BaseModel) for v in value):
            return tuple(v.model_dump() for v in value)
        return value

    fields = [f for f in dataclasses.fields(BacktestConfig) if f.metadata.get("setting")]
    return BacktestConfig(**{f.name: read(f.metadata["setting"]) for f in fields})
