"""The report's drill section: per recorded drill, the outage and decision timeline and outcomes by policy.

Why in the report: a fallback is trusted once someone has seen it switch on a running system;
the page shows when each dependency failed (and how), when each policy's service saw it and
switched, and what the business kept, side by side.
"""

from __future__ import annotations

import html

import matplotlib.pyplot as plt

from tasks.report import _fmt, _png, _table

__all__ = ["drill_section", "OUTCOME_ROWS"]

_MODE_COLORS = {
    "refuse": "tab:red",
    "timeout": "tab:purple",
    "errors": "tab:orange",
    "latency": "gold",
    "partial": "tab:orange",
}
OUTCOME_ROWS = (
    ("MTTD s", "mttd_s", ".2f"),
    ("MTTSF s", "mttsf_s", ".2f"),
    ("invoices processed", "invoices_processed", ",.0f"),
    ("value processed", "value_processed", ",.0f"),
    ("value lost", "value_lost", ",.0f"),
    ("value shed (deferred)", "value_shed", ",.0f"),
    ("decisions changed", "decisions_changed", ",.0f"),
    ("KL normal/fallback", "kl_normal_fallback", ".3f"),
)


def _mean(summary: dict, name: str, spec: str) -> str:
    fig = summary.get(name)
    return "-" if fig is None else _fmt(fig["mean"], spec)


def _timeline(seed: dict, policies: list[str]) -> str:
    plan, events = seed["plan"], seed["events"]
    roles = sorted({s["role"] for s in plan["segments"]})
    rows = [*roles, *policies]
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.2))
    for y, role in enumerate(roles):
        for s in (s for s in plan["segments"] if s["role"] == role):
            ax.barh(y, s["end_s"] - s["start_s"], left=s["start_s"], color=_MODE_COLORS[s["mode"]], height=0.6)
    for j, policy in enumerate(policies):
        y = len(roles) + j
        decisions = [e for e in events.get(policy, []) if e["kind"] == "decision"]
        normal = decisions[0]["admit"] if decisions else None
        for e, nxt in zip(decisions, [*decisions[1:], None]):
            end = nxt["t"] if nxt else plan["window_s"]
            if e["admit"] != normal:
                ax.barh(y, end - e["t"], left=max(e["t"], 0), color="tab:blue", height=0.6)
        seen = [e["t"] for e in events.get(policy, []) if e["kind"] == "observed" and (e["down"] or e["degraded"])]
        if seen:
            ax.plot([seen[0]], [y], marker="v", color="black")
    ax.set_yticks(range(len(rows)), [f"fault: {r}" for r in roles] + [f"policy: {p}" for p in policies])
    ax.set_xlim(0, plan["window_s"])
    ax.invert_yaxis()
    ax.set_xlabel(
        "seconds from the start of the load (red refuse, purple timeout, orange errors/partial; "
        "blue = fallback plan in force; triangle = first detection)"
    )
    return _png(fig)


def drill_section(records: dict[str, dict]) -> str:
    """HTML for every recorded drill (the newest per fault source); empty when none was recorded."""
    if not records:
        return ""
    parts = [
        "<h2>Drills</h2><p>Recorded by <code>qres drill</code>: real processes on loopback, faults injected by a "
        "proxy in front of each dependency, the same invoices sent to one service per policy. Figures are means "
        "over seeds (docs/drills.md).</p>"
    ]
    for source, rec in sorted(records.items()):
        policies = list(rec["policies"])
        summary = rec["summary"]
        parts.append(
            f"<h3>{html.escape(source)}</h3><p>shedding {html.escape(str(rec.get('bundle_version')))}, seeds "
            f"{html.escape(str(rec['seeds']))}, roles {html.escape(', '.join(f'{k}={v}' for k, v in rec['roles'].items()))}"
            f"; timeline of seed {rec['per_seed'][0]['seed']}.</p>"
        )
        parts.append(_timeline(rec["per_seed"][0], policies))
        rows = [[label, *[_mean(summary[p], name, spec) for p in policies]] for label, name, spec in OUTCOME_ROWS]
        prios = sorted({k for p in policies for k in summary[p]["sla_miss"]})
        rows += [[f"SLA missed {k}", *[f"{summary[p]['sla_miss'][k]:.0%}" for p in policies]] for k in prios]
        parts.append(_table(["figure", *policies], rows, set(range(1, len(policies) + 1))))
    return "".join(parts)
