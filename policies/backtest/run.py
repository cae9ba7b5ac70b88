"""A whole backtest: split history in time, fit and solve on the past, replay later incidents.

:func:`run_backtest` fits the failure model on the checks before the split, builds the
scenario set and solves the shedding policy as the nightly flow does (or takes a published
bundle's decisions instead), fits the states of the whole history, finds the incidents that
start after the split and replays each with :mod:`policies.backtest.replay`. Figures per incident
and overall are in :func:`summarize`; everything returned is JSON-able except ``train``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from policies.backtest.guards import guard_replay
from policies.backtest.metrics import cvar, kl_divergence, share_or_none
from policies.backtest.replay import (
    GreedyPolicy,
    OraclePolicy,
    PublishedPolicy,
    StateCatalog,
    fcfs_policy,
    find_incidents,
    replay_window_values,
    tiers_policy,
)
from policies.errors import NothingToLearnError, QresError
from policies.model.failure_model import FailureModel, fit_failure_model
from policies.model.states import UP, hysteresis_length
from policies.scenarios.scenario_set import ScenarioSet, build_scenarios
from policies.shedding.fallback import FALLBACK_FILE, fallback_document
from policies.shedding.policy import build_shedding_problems, decisions_table, policy_document, solve_shedding
from qres_client.bundle import encode_json, encode_parquet
from qres_client.index import DEFAULT_UNMATCHED, build_index

__all__ = ["BacktestConfig", "TrainedPolicy", "train_policy", "run_backtest", "summarize", "POLICY_ORDER"]

POLICY_ORDER = ("published", "fcfs", "tiers", "greedy", "oracle")


@dataclass(frozen=True)
class BacktestConfig:
    """Model, scenario and solver parameters (as in the nightly settings) and the split."""

    train_fraction: float = 0.7
    merge_gap_min: float = 10.0
    alpha: float = 0.95  # CVaR level over incidents
    window_min: int = 1
    hysteresis_windows: int = 2
    hysteresis_min: float = 0.0
    agreement: str = "majority"
    target_mass: float = 0.995
    scenario_params: dict = field(default_factory=dict)  # sample_max, sample_min_probability, sample_params
    solvers: tuple[str, ...] = ("greedy", "cpsat", "anneal")
    time_limit_s: float = 2.0
    levels: int = 4
    anneal_params: dict = field(default_factory=dict)
    seed: int = 7
    unmatched: str = DEFAULT_UNMATCHED  # the published policy's rule for unnamed states (qres_client.client)
    goal_share: float = 0.95
    goal_cvar_ratio: float = 0.5
    refuse_empty: bool = True  # raise NothingToLearnError on an empty question (else report it in "refused")


@dataclass
class TrainedPolicy:
    """The policy fitted on the past, with what the report shows about it."""

    model: FailureModel
    scenarios: ScenarioSet
    decisions: bytes
    document: dict
    solvers: list[dict]
    fallback: bytes = b""  # fallback.json, as the nightly bundle ships it


def _fit(tables, cfg: BacktestConfig, checks: pa.Table) -> FailureModel:
    return fit_failure_model(
        tables["services"],
        tables["dependencies"],
        checks,
        tables.get("incidents"),
        window_min=cfg.window_min,
        hysteresis_windows=cfg.hysteresis_windows,
        hysteresis_min=cfg.hysteresis_min,
        agreement=cfg.agreement,
    )


def train_policy(
    tables: Mapping[str, pa.Table],
    cfg: BacktestConfig,
    checks: pa.Table,
    progress: Callable[[int, int], None] | None = None,
) -> TrainedPolicy:
    """Fit, build scenarios and solve on ``checks`` exactly as the nightly flow does."""
    model = _fit(tables, cfg, checks)
    scen = build_scenarios(
        model,
        tables["dependencies"],
        target_mass=cfg.target_mass,
        services=tables["services"],
        seed=cfg.seed,
        **cfg.scenario_params,
    )
    problems = build_shedding_problems(
        tables["services"], tables["dependencies"], tables["workloads"], scen.scenarios, levels=cfg.levels
    )
    results = solve_shedding(
        problems,
        seed=cfg.seed,
        time_limit_s=cfg.time_limit_s,
        solvers=cfg.solvers,
        anneal_params=cfg.anneal_params or None,
        progress=progress,
    )
    rows = [
        {
            "scenario": s.key,
            "probability": s.probability,
            "chosen": r.chosen,
            "objective": r.best.objective,
            "gap": r.gap,
            "candidates": {
                c.info.solver: {
                    "status": c.info.status,
                    "objective": c.objective,
                    "bound": c.info.bound,
                    "time_s": c.info.time_s,
                }
                for c in r.candidates
            },
        }
        for s, r in zip(scen.scenarios, results)
    ]
    fallback = encode_json(
        fallback_document(tables["services"], tables["dependencies"], tables["workloads"], levels=cfg.levels)
    )
    return TrainedPolicy(
        model,
        scen,
        encode_parquet(decisions_table(scen.scenarios, results, problems)),
        policy_document(scen.scenarios, results, problems),
        rows,
        fallback,
    )


def run_backtest(
    tables: Mapping[str, pa.Table],
    cfg: BacktestConfig,
    *,
    decisions: bytes | None = None,
    version: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    fallback: bytes | None = None,
) -> dict:
    """Backtest the policy trained before the split (or the given bundle ``decisions``).

    The published policy answers as the client does with ``cfg.unmatched``; a given bundle
    without ``fallback`` (fallback.json; older bundles have none) answers with the old rule.

    Returns the figures (see :func:`summarize`) plus ``train`` (a :class:`TrainedPolicy`, or None
    when ``decisions`` were given). Raises QresError when the history is too short to split.
    """
    report = progress or (lambda step, done, total: None)
    if not 0.0 < cfg.train_fraction < 1.0:
        raise QresError(f"backtest.train_fraction must be within (0, 1), e.g. 0.7; got {cfg.train_fraction!r}")
    checks = tables["health_checks"]
    if checks.num_rows == 0:
        raise QresError("table 'health_checks' is empty: nothing to backtest")
    full = _fit(tables, cfg, checks)
    n_w = full.states.shape[0]
    split_w = int(round(cfg.train_fraction * n_w))
    if split_w < 1 or split_w >= n_w:
        raise QresError(f"history of {n_w} windows is too short to split at {cfg.train_fraction:.0%}")
    split_at = full.start + pd.Timedelta(minutes=split_w * full.window_min)
    train = None
    if decisions is None:
        past = checks.filter(
            pc.less(checks.column("ts"), pa.scalar(split_at.to_pydatetime(), checks.schema.field("ts").type))
        )
        train = train_policy(tables, cfg, past, progress=lambda d, t: report("solve policy on the past", d, t))
        decisions, version, fallback = train.decisions, "trained", train.fallback
    files = {"decisions.parquet": decisions, **({FALLBACK_FILE: fallback} if fallback else {})}
    index = build_index("shedding", version or "bundle", {}, files)
    k = hysteresis_length(cfg.hysteresis_windows, cfg.hysteresis_min, cfg.window_min)
    delay = k - 1
    incidents = find_incidents(
        full.states,
        full.services,
        first_window=split_w,
        merge_gap_windows=int(cfg.merge_gap_min // full.window_min),
        pad_windows=delay + 1,
    )
    catalog = StateCatalog(tables, full.services, levels=cfg.levels)
    refused = None
    try:
        guard_replay(full, incidents, split_at, catalog)
    except NothingToLearnError as exc:
        if cfg.refuse_empty:
            raise
        refused, incidents = str(exc), []  # the nightly records why and goes on without figures
    policies = [
        PublishedPolicy(index, cfg.unmatched),
        fcfs_policy(),
        tiers_policy(tables["workloads"]),
        GreedyPolicy(),
        OraclePolicy(seed=cfg.seed, time_limit_s=cfg.time_limit_s),
    ]
    caches = {p.name: {} for p in policies}
    normal = catalog.views_of(np.full((1, len(full.services)), UP, dtype=np.int8))
    normal_run = {p.name: replay_window_values(p, normal, normal, caches[p.name]) for p in policies}
    normal_value = normal_run["oracle"][0][0]
    per_incident = []
    for i, inc in enumerate(incidents):
        w = np.arange(inc.start_window, inc.end_window)
        truth = catalog.views_of(full.states[w])
        observed = catalog.views_of(full.states[np.maximum(w - delay, 0)])
        runs = {p.name: replay_window_values(p, truth, observed, caches[p.name]) for p in policies}
        per_incident.append(_incident_figures(inc, full, truth, runs, normal_run, normal_value))
        report("replay incidents", i + 1, len(incidents))
    out = summarize(per_incident, alpha=cfg.alpha, goal_share=cfg.goal_share, goal_cvar_ratio=cfg.goal_cvar_ratio)
    matched = policies[0].matched
    out.update(
        {
            "window_min": full.window_min,
            "delay_min": delay * full.window_min,
            "split_at": split_at.isoformat(),
            "start": full.start.isoformat(),
            "end": full.end.isoformat(),
            "train_fraction": cfg.train_fraction,
            "normal_value_per_h": normal_value,
            "version": version,
            "published_exact_share": (sum(1 for k_, v in matched.items() if k_ == v) / len(matched))
            if matched
            else None,
            "train": train,
            "refused": refused,
        }
    )
    return out


def _incident_figures(inc, full, truth, runs, normal_run, normal_value) -> dict:
    hours = full.window_min / 60.0
    oracle_value = float(runs["oracle"][0].sum()) * hours
    bad = np.array([v.key != "normal" for v in truth])
    demand = truth[0].problem.demand
    figures = {}
    for name, (values, realized, intended) in runs.items():
        value = float(values.sum()) * hours
        viol = sum(int(np.sum(t.problem.runnable & (k < t.problem.bounds.lo))) for t, k in zip(truth, realized))
        normal_k = normal_run[name][2][0]
        switch = next((j for j, k in enumerate(intended) if not np.array_equal(k, normal_k)), None)
        mix = sum((k * demand for k, b in zip(realized, bad) if b), np.zeros(len(demand)))
        figures[name] = {
            "value": value,
            "share": share_or_none(value, oracle_value),
            "loss": float(normal_value * len(values) * hours - value),
            "min_share_violation_min": viol * full.window_min,
            "switch_min": None if switch is None else switch * full.window_min,
            "kl": kl_divergence(mix, normal_run[name][1][0] * demand) if bad.any() else 0.0,
        }
    start = full.start + pd.Timedelta(minutes=inc.start_window * full.window_min)
    return {
        "number": inc.number,
        "start": start.isoformat(),
        "minutes": (inc.end_window - inc.start_window) * full.window_min,
        "outage_min": inc.outage_windows * full.window_min,
        "services": list(inc.services),
        "states": sorted({v.key for v in truth}),
        "impacting": bool(oracle_value < normal_value * (inc.end_window - inc.start_window) * hours - 1e-6),
        "policies": figures,
    }


def summarize(
    per_incident: list[dict], *, alpha: float = 0.95, goal_share: float = 0.95, goal_cvar_ratio: float = 0.5
) -> dict:
    """Overall figures per policy, and whether the published policy met the goals.

    ``share`` is total value over total oracle value (incidents weigh by their length and
    cost); ``mean_share`` the plain mean of per-incident shares; ``cvar`` the CVaR at
    ``alpha`` of the per-incident losses.
    """
    overall = {}
    names = [n for n in POLICY_ORDER if per_incident and n in per_incident[0]["policies"]]
    oracle_total = sum(i["policies"]["oracle"]["value"] for i in per_incident) if per_incident else 0.0
    for n in names:
        figs = [i["policies"][n] for i in per_incident]
        shares = [f["share"] for f in figs if f["share"] is not None]
        switches = [f["switch_min"] for f in figs if f["switch_min"] is not None]
        overall[n] = {
            "share": share_or_none(sum(f["value"] for f in figs), oracle_total),
            "mean_share": float(np.mean(shares)) if shares else None,
            "min_share": float(np.min(shares)) if shares else None,
            "loss": float(sum(f["loss"] for f in figs)),
            "cvar": cvar([f["loss"] for f in figs], alpha),
            "min_share_violation_min": int(sum(f["min_share_violation_min"] for f in figs)),
            "switch_min_median": float(np.median(switches)) if switches else None,
            "kl_mean": float(np.mean([f["kl"] for f in figs])) if figs else None,
        }
    goal = {"share": goal_share, "cvar_ratio": goal_cvar_ratio, "share_met": None, "cvar_met": None}
    if "published" in overall and per_incident:
        pub, tiers = overall["published"], overall.get("tiers")
        goal["share_met"] = pub["share"] is None or pub["share"] >= goal_share
        if tiers and tiers["cvar"] is not None and pub["cvar"] is not None:
            goal["cvar_ratio_measured"] = share_or_none(pub["cvar"], tiers["cvar"])
            goal["cvar_met"] = pub["cvar"] <= goal_cvar_ratio * tiers["cvar"] + 1e-9
    return {
        "alpha": alpha,
        "incidents": per_incident,
        "n_incidents": len(per_incident),
        "n_impacting": sum(1 for i in per_incident if i["impacting"]),
        "overall": overall,
        "goal": goal,
    }
