"""What a drill measured, per policy: detection and switch times, business outcomes, decision drift.

Inputs are plain records (so each figure can be checked by hand): the invoice stream, each
service's answer per invoice, each service's event log (observed-state and decision changes,
seconds from the start of the load) and the fault plan.

* MTTD: first fault onset -> the service first observes a drilled dependency down or degraded.
* MTTSF: first fault onset -> the service first switches to a plan other than its normal one.
* value lost: admitted invoices that failed, plus those the local model mis-validated;
  shed invoices are deferred, not lost, but they miss their SLA.
* decisions changed: invoices admitted differently from what the normal plan would have done.
* KL: mean over invoices decided under a fallback plan of KL(fallback admit || normal admit).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping

from policies.backtest.metrics import kl_divergence
from policies.drill.timeline import FaultPlan

__all__ = ["drill_outcome", "summarize_seeds", "FIGURES"]

FIGURES = (
    "mttd_s",
    "mttsf_s",
    "invoices",
    "invoices_processed",
    "value_processed",
    "value_lost",
    "value_shed",
    "decisions_changed",
    "kl_normal_fallback",
)


def _first_after(events: Iterable[Mapping], t0: float, kind: str, pred) -> float | None:
    for e in events:
        if e["kind"] == kind and e["t"] >= t0 and pred(e):
            return round(e["t"] - t0, 3)
    return None


def drill_outcome(
    invoices: list[Mapping], results: Mapping[str, Mapping], events: list[Mapping], plan: FaultPlan, priorities
) -> dict:
    """One policy, one seed: the figures above plus SLA misses by priority."""
    onset = plan.onset_s() or 0.0
    drilled = set(plan.down) | set(plan.degraded)
    events = sorted(events, key=lambda e: e["t"])
    decisions = [e for e in events if e["kind"] == "decision"]
    normal = decisions[0] if decisions else None
    mttd = _first_after(events, onset, "observed", lambda e: bool(drilled & (set(e["down"]) | set(e["degraded"]))))
    mttsf = (
        None
        if normal is None
        else _first_after(events, onset, "decision", lambda e: dict(e["admit"]) != dict(normal["admit"]))
    )
    admit_of = {e["key"]: e["admit"] for e in decisions}
    out = dict.fromkeys(("invoices_processed", "value_processed", "value_lost", "value_shed", "decisions_changed"), 0.0)
    sla_total = {p.name: 0 for p in priorities}
    sla_miss = dict(sla_total)
    kls = []
    for inv in invoices:
        r = results.get(inv["invoice_id"], {"status": "error"})
        status, value = r["status"], float(inv["value"])
        sla_total[inv["priority"]] += 1
        ok = status == "processed" and float(r.get("latency_s", 1e9)) <= float(inv["sla_s"])
        sla_miss[inv["priority"]] += 0 if ok else 1
        if status == "processed":
            out["invoices_processed"] += 1
            if r.get("misvalidated"):
                out["value_lost"] += value
            else:
                out["value_processed"] += value
        elif status == "shed":
            out["value_shed"] += value
        else:
            out["value_lost"] += value
        if "admitted" in r and r["admitted"] != r["admitted_normal"]:
            out["decisions_changed"] += 1
        key = r.get("plan")
        if normal is not None and key in admit_of and admit_of[key] != normal["admit"]:
            wl = sorted(normal["admit"])
            kls.append(kl_divergence([admit_of[key][w] for w in wl], [normal["admit"][w] for w in wl]))
    return {
        "mttd_s": mttd,
        "mttsf_s": mttsf,
        "invoices": float(len(invoices)),
        **{k: round(v, 2) for k, v in out.items()},
        "kl_normal_fallback": round(statistics.fmean(kls), 6) if kls else 0.0,
        "sla_miss": {p: round(sla_miss[p] / sla_total[p], 4) if sla_total[p] else 0.0 for p in sla_total},
    }


def summarize_seeds(per_seed: list[dict]) -> dict:
    """Per figure across seeds: mean, min and max (None when no seed measured it, e.g. no switch)."""
    out: dict = {"seeds": len(per_seed)}
    for name in FIGURES:
        vals = [s[name] for s in per_seed if s.get(name) is not None]
        out[name] = (
            {"mean": round(statistics.fmean(vals), 4), "min": min(vals), "max": max(vals), "n": len(vals)}
            if vals
            else None
        )
    prios = sorted({p for s in per_seed for p in s["sla_miss"]})
    out["sla_miss"] = {p: round(statistics.fmean(s["sla_miss"][p] for s in per_seed), 4) for p in prios}
    return out
