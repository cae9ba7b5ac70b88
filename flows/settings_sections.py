"""The sections of the settings model (``[model]``, ``[solve]``, ...): typed, bounded, documented.

``flows/settings.py`` composes them with the environment and the config file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSettings(_Section):
    window_min: int = Field(1, ge=1, description="width of a telemetry window")
    hysteresis_windows: int = Field(2, ge=1, description="windows in a new state before a change is accepted")
    hysteresis_min: float = Field(0.0, ge=0, description="minimum minutes in a new state (the larger rule wins)")
    agreement: Literal["majority", "any", "all"] = Field("majority", description="how probes are combined")
    credible: float = Field(0.95, gt=0, lt=1, description="credible level of the P(down) interval")
    alpha: float = Field(0.05, gt=0, lt=1, description="family-wise level of the co-failure test")
    health_horizon_min: float = Field(15.0, gt=0, description="horizon of the runtime health score")


class WhatIfScenario(_Section):
    name: str
    down: tuple[str, ...] = ()
    degraded: tuple[str, ...] = ()
    duration_min: float = Field(60.0, gt=0)
    probability: float = Field(0.0, ge=0, le=1, description="0: solved and shipped, not weighed")


class ScenarioSettings(_Section):
    target_mass: float = Field(
        1.0, gt=0, le=1, description="probability mass the kept scenarios must cover (1 = every pattern seen)"
    )
    sample_max: int = Field(8, ge=0, description="multi-failure scenarios sampled from the joint model (0 = off)")
    sample_min_probability: float = Field(1e-7, ge=0, le=1)
    sample_num_reads: int = Field(400, ge=1)
    sample_num_sweeps: int = Field(200, ge=1)
    sample_beta: float = Field(0.5, gt=0, description="inverse temperature of the proposal sampler")
    what_if: tuple[WhatIfScenario, ...] = ()
    single_outages: Literal["observed", "all"] = Field(
        "observed",
        description="single-dependency outages solved: observed ones only (coverage), or one per dependency",
    )


class SolveSettings(_Section):
    solvers: tuple[str, ...] = ("greedy", "cpsat", "anneal")
    time_limit_s: float = Field(2.0, gt=0, description="per solver and scenario")
    levels: int = Field(4, ge=1, le=20, description="admission shares are multiples of 1/levels")
    top_k: int = Field(3, ge=1)
    sampler: str = "dwave.samplers.SimulatedAnnealingSampler"
    anneal_num_reads: int = Field(16, ge=1)
    anneal_num_sweeps: int = Field(400, ge=1)
    time_coupled: bool = Field(
        True, description="plan each observed state over its expected horizon with switching costs (docs/families.md)"
    )
    horizon_steps: int = Field(6, ge=1, le=48, description="steps of the time-coupled plan per state")
    hold_s: float = Field(
        300.0, ge=0, description="no re-admission this long after a workload's switch (the client's hold_s)"
    )
    horizon_solvers: tuple[str, ...] = Field(
        ("greedy", "cpsat"), description="time-coupled portfolio (benchmarks/time_coupled_solvers.py)"
    )

    @field_validator("solvers", "horizon_solvers")
    @classmethod
    def _known(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [s for s in v if s not in ("greedy", "cpsat", "anneal")]
        if bad or not v:
            raise ValueError(f"unknown solver(s) {bad}; choose from greedy, cpsat, anneal")
        return v


class FamilySettings(_Section):
    """The standby and routing bundles and the tier assignment, solved after shedding (docs/families.md)."""

    enabled: tuple[Literal["standby", "routing", "tiers"], ...] = ("standby", "routing", "tiers")
    time_limit_s: float = Field(
        2.0, gt=0, description="per solver and instance (one standby, one per routing scenario)"
    )
    standby_solvers: tuple[Literal["greedy", "cpsat", "anneal"], ...] = ("greedy", "cpsat", "anneal")
    tiers: int = Field(
        4, ge=1, le=16, description="tiers of the robust assignment (exported on Google's 4 criticalities)"
    )
    tier_alpha: float = Field(0.9, ge=0, lt=1, description="CVaR level of the tier assignment's loss")
    tier_lambda: float = Field(1.0, ge=0, description="weight of CVaR against expected loss")
    routing_samples: int = Field(64, ge=1, description="latency samples per endpoint and scenario")
    routing_sla_ms: float = Field(250.0, gt=0)
    routing_alpha: float = Field(0.95, ge=0, lt=1, description="CVaR level of the SLA-violation penalty")


class GateSettings(_Section):
    max_gap: float = Field(0.05, ge=0, description="largest accepted relative gap to the best bound")
    tolerance: float = Field(0.02, ge=0, description="allowed drop of expected value against the champion")


class BundleSettings(_Section):
    keep_versions: int = Field(10, ge=1, description="versions kept per policy; LATEST's and the champion's never go")
    key_dir: Path | None = Field(None, description="signing keys (qres keys init); default <state_dir>/keys")
    allow_unsigned: bool = Field(False, description="let `qres decide`/`verify` accept unsigned bundles")


class IngestSettings(_Section):
    quarantine_max_share: float = Field(
        0.001,
        ge=0,
        le=1,
        description="share of a table's rows that may be quarantined for row-level rules before the run fails closed",
    )
    quarantine_max_share_by_table: dict[str, float] = Field(default_factory=dict, description="per-table overrides")
    freshness_max_age_h: float | None = Field(None, gt=0, description="newest check must be this recent; None = off")
    lateness_min: int = Field(1440, ge=0, description="rows older than the watermark by more are dropped as too late")
    incremental: bool = Field(True, description="read only new files/rows past the watermark (policies/watermark.py)")
    warn_down_h: float = Field(168.0, gt=0, description="warn: a service down longer than this is probably retired")
    warn_silent_h: float = Field(
        72.0, gt=0, description="warn: a service not checked for this long stopped being monitored"
    )
    warn_min_outages: int = Field(5, ge=0, description="warn: fewer outages than this are too few to learn from")


class BacktestSettings(_Section):
    train_fraction: float = Field(
        0.7, gt=0, lt=1, description="share of the history to fit on; later incidents are replayed"
    )
    merge_gap_min: float = Field(10.0, ge=0, description="outages closer than this are one incident")
    cvar_alpha: float = Field(0.95, gt=0, lt=1, description="CVaR level of the loss over incidents")
    goal_share: float = Field(0.95, gt=0, le=1, description="goal: share of the oracle's value the policy keeps")
    goal_cvar_ratio: float = Field(0.5, gt=0, description="goal: policy CVaR at most this times static tiers' CVaR")
    min_share: float = Field(0.0, ge=0, le=1, description="gate: lowest accepted share of the oracle's value (0 = off)")
    tolerance: float = Field(0.02, ge=0, description="gate: allowed drop of the backtest share against the champion")
    enabled: bool = Field(True, description="run the backtest in the nightly flow")
    unmatched: Literal["greedy", "cover-then-greedy", "cover"] = Field(
        "greedy", description="the published policy's rule for states no scenario names, as PolicyClient(unmatched=...)"
    )
    dwell_min: float = Field(5.0, ge=0, description="minimum dwell of the greedy_dwell baseline after a change")


class OrchestrationSettings(_Section):
    timezone: str = Field("UTC", description="time zone of the nightly schedule (deployments/prefect.yaml)")
    nightly_cron: str = Field("0 2 * * *", description="when the nightly deployment runs")
    task_timeout_s: float = Field(600.0, gt=0, description="timeout of one solve chunk task")
    step_timeout_s: float = Field(
        900.0,
        gt=0,
        description="timeout of every other step (ingest, validate, fit, "
        "scenarios, solve, backtest, MLflow calls, publish)",
    )
    run_lock_wait_s: float = Field(
        1800.0,
        gt=0,
        description="how long a run waits for the `qres-run` lock "
        "(when that Prefect global concurrency limit exists) before failing",
    )
    flow_timeout_s: float = Field(3600.0, gt=0, description="timeout of a whole nightly or resolve run")
    solve_chunk: int = Field(16, ge=1, description="scenarios per submitted solve task (Dask or threads)")
    solve_cache: bool = Field(True, description="reuse per-scenario results whose problem is unchanged")
    resolve_backtest: bool = Field(False, description="run the backtest in `qres resolve` too (slower)")
    resolve_latencies: Literal["nightly", "fresh"] = Field(
        "nightly",
        description="routing's latency profiles in `qres resolve`: the last nightly's (kept in the state "
        "dir; routing then re-solves only the scenarios that changed) or recomputed from every check",
    )


class MlflowSettings(_Section):
    tracking_uri: str | None = Field(None, description="default: SQLite under state_dir")
    experiment: str = "qresilience"
    registered_model_prefix: str = "qresilience"
