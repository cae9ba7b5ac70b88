"""The backtest's parameters: the nightly's model, scenario and solver settings, and the split.

Each field names the nightly setting it mirrors (``metadata["setting"]``), so the nightly and
``qres backtest`` build it from one place (``flows/params.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from policies.solve.anneal import AnnealParams
from qres_client.index import DEFAULT_UNMATCHED

__all__ = ["BacktestConfig"]


def _setting(path: str, default, **kw):
    """A config field read from the nightly setting at ``path`` ("section.name"; see ``flows.settings``)."""
    return field(default=default, metadata={"setting": path}, **kw)


@dataclass(frozen=True)
class BacktestConfig:
    """Model, scenario and solver parameters (as in the nightly settings) and the split.

    Declarative: each field names the setting it comes from, and ``flows.settings.backtest_config``
    fills every field from there, so a new parameter is one new field here.
    """

    train_fraction: float = _setting("backtest.train_fraction", 0.7)
    merge_gap_min: float = _setting("backtest.merge_gap_min", 10.0)
    alpha: float = _setting("backtest.cvar_alpha", 0.95)  # CVaR level over incidents
    goal_share: float = _setting("backtest.goal_share", 0.95)
    goal_cvar_ratio: float = _setting("backtest.goal_cvar_ratio", 0.5)
    unmatched: str = _setting("backtest.unmatched", DEFAULT_UNMATCHED)  # the client's rule for unnamed states
    dwell_min: float = _setting("backtest.dwell_min", 5.0)  # greedy_dwell's minimum dwell after a change
    window_min: int = _setting("model.window_min", 1)
    hysteresis_windows: int = _setting("model.hysteresis_windows", 2)
    hysteresis_min: float = _setting("model.hysteresis_min", 0.0)
    agreement: str = _setting("model.agreement", "majority")
    target_mass: float = _setting("scenarios.target_mass", 1.0)
    sample_max: int = _setting("scenarios.sample_max", 0)
    sample_min_probability: float = _setting("scenarios.sample_min_probability", 1e-6)
    sample_num_reads: int = _setting("scenarios.sample_num_reads", 400)
    sample_num_sweeps: int = _setting("scenarios.sample_num_sweeps", 200)
    sample_beta: float = _setting("scenarios.sample_beta", 0.5)
    what_if: tuple[dict, ...] = _setting("scenarios.what_if", ())
    single_outages: str = _setting("scenarios.single_outages", "observed")
    solvers: tuple[str, ...] = _setting("solve.solvers", ("greedy", "cpsat", "anneal"))
    time_limit_s: float = _setting("solve.time_limit_s", 2.0)
    levels: int = _setting("solve.levels", 4)
    anneal: AnnealParams | None = _setting("solve.anneal", None)  # None: each solver's own defaults
    time_coupled: bool = _setting("solve.time_coupled", True)
    horizon_steps: int = _setting("solve.horizon_steps", 6)
    hold_s: float = _setting("solve.hold_s", 300.0)
    horizon_solvers: tuple[str, ...] = _setting("solve.horizon_solvers", ("greedy", "cpsat"))
    seed: int = _setting("seed", 7)

    def scenario_kwargs(self) -> dict:
        """``build_scenarios``' sampling and what-if arguments."""
        return {
            "sample_max": self.sample_max,
            "sample_min_probability": self.sample_min_probability,
            "sample_params": {
                "num_reads": self.sample_num_reads,
                "num_sweeps": self.sample_num_sweeps,
                "beta": self.sample_beta,
            },
            "what_if": list(self.what_if),
            "single_outages": self.single_outages,
        }

    # Not a setting: the CLI refuses an empty question, the nightly records why and goes on.
    refuse_empty: bool = field(default=True, metadata={"setting": None})
