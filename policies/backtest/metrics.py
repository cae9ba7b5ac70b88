"""Figures a backtest reports: per incident and overall, tail loss (CVaR) and how far decisions move.

Kept apart from the replay engine so each figure can be checked by hand on a few numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from policies.risk import cvar

__all__ = ["POLICY_ORDER", "incident_figures", "summarize", "kl_divergence", "share_or_none"]

POLICY_ORDER = (
    "published",
    "fcfs",
    "tiers",
    "greedy",
    "greedy_dwell",
    "greedy_admission",
    "published_no_standby",
    "greedy_standby",
    "oracle",
)


def kl_divergence(p: Sequence[float], q: Sequence[float], *, eps: float = 1e-6) -> float:
    """KL(p || q) in nats between two non-negative weight vectors, each normalized to sum 1.

    ``eps`` is added to every entry before normalizing so a workload admitted in one and
    shed in the other gives a large but finite number. Two all-zero vectors give 0.
    """
    a, b = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"p and q must have the same shape, got {a.shape} and {b.shape}")
    if np.any(a < 0) or np.any(b < 0):
        raise ValueError("p and q must be non-negative")
    a, b = a + eps, b + eps
    a, b = a / a.sum(), b / b.sum()
    return float(np.sum(a * np.log(a / b)))


def share_or_none(value: float, reference: float) -> float | None:
    """value / reference, or None when the reference is not positive (nothing to retain)."""
    return value / reference if reference > 1e-12 else None


def _zero(x: float) -> float:
    """Float noise around zero (sums in another order) reads as zero, so a tie is a tie."""
    return 0.0 if abs(x) < 1e-6 else x


def _ratio(a: float, b: float) -> float | None:
    """a / b, None when b is zero (live greedy lost nothing avoidable: no ratio to report)."""
    return a / b if b > 1e-6 else None


def incident_figures(inc, full, truth, runs, normal_value) -> dict:
    """One incident's figures per policy (``runs``: name -> ``replay.PolicyRun``; see docs/backtest.md)."""
    hours = full.window_min / 60.0
    n = len(truth)
    bad = np.array([v.key != "normal" for v in truth])
    demand = truth[0].problem.demand

    def value(run) -> float:
        return float(run.values.sum()) * hours - float(run.switch.sum())

    oracle_value = value(runs["oracle"])
    oracle_loss = normal_value * n * hours - oracle_value
    figures = {}
    for name, run in runs.items():
        v = value(run)
        loss = float(normal_value * n * hours - v)
        viol = sum(int(np.sum(t.problem.runnable & (k < t.problem.bounds.lo))) for t, k in zip(truth, run.realized))
        normal_k = run.normal.levels
        switch = run.first_change
        mix = sum((k * demand for k, b in zip(run.realized, bad) if b), np.zeros(len(demand)))
        figures[name] = {
            "value": v,
            "share": share_or_none(v, oracle_value),
            "loss": loss,
            "avoidable_loss": _zero(loss - oracle_loss),
            "switch_cost": float(run.switch.sum()),
            "decision_changes": run.changes,
            "min_share_violation_min": viol * full.window_min,
            "switch_min": None if switch is None else switch * full.window_min,
            "kl": kl_divergence(mix, normal_k * demand) if bad.any() else 0.0,
            "standby_value": 0.0 if run.standby_value is None else float(run.standby_value.sum()) * hours,
            "standby_cost": 0.0 if run.standby_cost is None else float(run.standby_cost.sum()) * hours,
        }
    start = full.start + pd.Timedelta(minutes=inc.start_window * full.window_min)
    return {
        "number": inc.number,
        "start": start.isoformat(),
        "minutes": n * full.window_min,
        "outage_min": inc.outage_windows * full.window_min,
        "services": list(inc.services),
        "states": sorted({v.key for v in truth}),
        "impacting": bool(oracle_loss > 1e-6),
        "policies": figures,
    }


def summarize(
    per_incident: list[dict], *, alpha: float = 0.95, goal_share: float = 0.95, goal_cvar_ratio: float = 0.5
) -> dict:
    """Overall figures per policy, and whether the published policy met the goals.

    ``share`` is total value over total oracle value (incidents weigh by their length and
    cost); ``mean_share`` the plain mean of per-incident shares; ``cvar`` the CVaR at
    ``alpha`` of the per-incident losses, ``avoidable_cvar`` of the avoidable losses;
    ``recovered`` the share of keep-all's (``fcfs``) avoidable loss that the policy avoids.
    """
    overall = {}
    names = [n for n in POLICY_ORDER if per_incident and n in per_incident[0]["policies"]]
    names += [n for n in (per_incident[0]["policies"] if per_incident else ()) if n not in names]
    oracle_total = sum(i["policies"]["oracle"]["value"] for i in per_incident) if per_incident else 0.0
    keep_all = sum(i["policies"]["fcfs"]["avoidable_loss"] for i in per_incident if "fcfs" in i["policies"])
    for n in names:
        figs = [i["policies"][n] for i in per_incident]
        shares = [f["share"] for f in figs if f["share"] is not None]
        switches = [f["switch_min"] for f in figs if f["switch_min"] is not None]
        avoidable = float(sum(f["avoidable_loss"] for f in figs))
        overall[n] = {
            "share": share_or_none(sum(f["value"] for f in figs), oracle_total),
            "mean_share": float(np.mean(shares)) if shares else None,
            "min_share": float(np.min(shares)) if shares else None,
            "loss": float(sum(f["loss"] for f in figs)),
            "cvar": cvar([f["loss"] for f in figs], alpha, whole_tail=True),
            "avoidable_loss": avoidable,
            "avoidable_cvar": cvar([f["avoidable_loss"] for f in figs], alpha, whole_tail=True),
            "recovered": None if keep_all <= 1e-6 else 1.0 - avoidable / keep_all,
            "switch_cost": float(sum(f["switch_cost"] for f in figs)),
            "decision_changes": int(sum(f["decision_changes"] for f in figs)),
            "decision_changes_max": int(max(f["decision_changes"] for f in figs)),
            "min_share_violation_min": int(sum(f["min_share_violation_min"] for f in figs)),
            "switch_min_median": float(np.median(switches)) if switches else None,
            "kl_mean": float(np.mean([f["kl"] for f in figs])) if figs else None,
            "standby_value": float(sum(f.get("standby_value", 0.0) for f in figs)),
            "standby_cost": float(sum(f.get("standby_cost", 0.0) for f in figs)),
        }
    goal = {"share": goal_share, "cvar_ratio": goal_cvar_ratio, "share_met": None, "cvar_met": None}
    if "published" in overall and per_incident:
        pub, tiers = overall["published"], overall.get("tiers")
        goal["share_met"] = pub["share"] is None or pub["share"] >= goal_share
        if tiers and tiers["cvar"] is not None and pub["cvar"] is not None:
            goal["cvar_ratio_measured"] = share_or_none(pub["cvar"], tiers["cvar"])
            goal["cvar_met"] = pub["cvar"] <= goal_cvar_ratio * tiers["cvar"] + 1e-9
        greedy = overall.get("greedy")
        if greedy:  # issue 14: published's avoidable loss at most half of live greedy's, total and CVaR
            for fig in ("avoidable_loss", "avoidable_cvar"):
                goal[f"{fig}_vs_greedy"] = _ratio(pub[fig], greedy[fig])
            live = overall.get("greedy_admission")
            for fig in ("avoidable_loss", "avoidable_cvar") if live else ():  # beyond the live admission rule
                goal[f"{fig}_vs_greedy_admission"] = _ratio(pub[fig], live[fig])
            sb = overall.get("greedy_standby")
            for fig in ("avoidable_loss", "avoidable_cvar") if sb else ():  # the shedding's merit, standby alike
                goal[f"{fig}_vs_greedy_standby"] = _ratio(pub[fig], sb[fig])
            goal["half_of_greedy_met"] = bool(
                pub["avoidable_loss"] <= 0.5 * greedy["avoidable_loss"] + 1e-6
                and pub["avoidable_cvar"] <= 0.5 * greedy["avoidable_cvar"] + 1e-6
                and greedy["avoidable_loss"] > 1e-6
            )
    return {
        "alpha": alpha,
        "incidents": per_incident,
        "n_incidents": len(per_incident),
        "n_impacting": sum(1 for i in per_incident if i["impacting"]),
        "overall": overall,
        "goal": goal,
    }
