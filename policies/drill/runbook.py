"""The on-call runbook: the page an engineer reads during an incident, written from the published bundle.

Why generated: the plan for each likely outage is in the bundle already; a hand-written runbook
drifts from it by the next nightly. Per outage it says what the policy does, what to watch, how to
roll back, and which drill (if any) showed it working, in markdown that renders in any wiki.
"""

from __future__ import annotations

from collections.abc import Mapping

from policies.drill.system import DEFAULT_SYSTEM, DrillSystem
from qres_client.health import health_score

__all__ = ["render_runbook", "matching_drill", "decide_command", "ROLLBACK"]

ROLLBACK = "qres rollback"  # docs/operations.md: the previous champion is republished as LATEST
FALLBACK_KEY = "fallback:all-down"


def _mean_outage_min(health: Mapping, service: str) -> float | None:
    params = health.get("dependencies", {}).get(service) or health.get("default")
    mu = float(params["recovery_rate_per_min"]) if params else 0.0
    return 1.0 / mu if mu > 0 else None


def matching_drill(drills: Mapping[str, dict], key: str, down: list[str], degraded: list[str]) -> dict | None:
    """The drill that played this scenario: by key, else a what-if or incident with the same faults."""
    if f"scenario:{key}" in drills:
        return drills[f"scenario:{key}"]
    want = (sorted(down), sorted(degraded))
    for rec in drills.values():
        plan = rec["per_seed"][0]["plan"]
        if (sorted(plan["down"]), sorted(plan["degraded"])) == want and set(plan["down"]) == set(down):
            return rec
    return None


def _what_it_does(actions: list[dict]) -> list[str]:
    shed = [a["workload_id"] for a in actions if a["admit"] == 0]
    part = [f"{a['workload_id']} {a['admit']:.0%}" for a in actions if 0 < a["admit"] < 1]
    kept = [a["workload_id"] for a in actions if a["admit"] >= 1]
    lines = [f"- keeps {len(kept)} workloads in full; first in line: {', '.join(kept[:5]) or 'none'}"]
    if part:
        lines.append(f"- admits part of {len(part)}: {', '.join(part[:8])}{' ...' if len(part) > 8 else ''}")
    lines.append(
        f"- sheds {len(shed)}: {', '.join(shed[:10]) or 'none'}{' ...' if len(shed) > 10 else ''}"
        + (" (the services refuse or defer their requests: expect their queues to grow)" if shed else "")
    )
    return lines


def _mean(summary: Mapping, name: str, spec: str) -> str:
    return "-" if summary.get(name) is None else format(summary[name]["mean"], spec)


def _drill_command(key: str, deps: list[str], system: DrillSystem) -> str:
    """The command that drills this scenario; with --roles when no stand-in plays its dependencies yet."""
    if any(system.role_of(d) for d in deps) or not deps:
        return f"qres drill --scenario '{key}'"
    role = "compute" if deps[0].startswith("region-") else "validation"
    return f"qres drill --scenario '{key}' --roles {role}={deps[0]}"


def decide_command(down: list[str], degraded: list[str]) -> str:
    args = (f" --down {','.join(down)}" if down else "") + (f" --degraded {','.join(degraded)}" if degraded else "")
    return f"qres decide{args}"


def _drill_lines(rec: dict | None, key: str, deps: list[str], system: DrillSystem) -> list[str]:
    if rec is None:
        return [f"- not drilled yet: `{_drill_command(key, deps, system)}`"]
    lines = [
        f"- drill `{rec['source']}` on {rec.get('bundle_version')}, seeds {rec['seeds']} (record {rec.get('record', '-')}):",
        "",
    ]
    lines.append("  | policy | MTTD s | MTTSF s | value processed | value lost | SLA missed P1 |")
    lines.append("  | --- | --- | --- | --- | --- | --- |")
    for policy in rec["policies"]:
        s = rec["summary"][policy]
        p1 = s["sla_miss"].get("P1")
        lines.append(
            f"  | {policy} | {_mean(s, 'mttd_s', '.2f')} | {_mean(s, 'mttsf_s', '.2f')} | "
            f"{_mean(s, 'value_processed', ',.0f')} | {_mean(s, 'value_lost', ',.0f')} | "
            f"{'-' if p1 is None else f'{p1:.0%}'} |"
        )
    return lines


def render_runbook(
    bundle: Mapping,
    scenarios: list[dict],
    health: Mapping,
    drills: Mapping[str, dict],
    top: int = 10,
    system: DrillSystem = DEFAULT_SYSTEM,
) -> str:
    """Markdown for the ``top`` likeliest outages of the bundle (and the all-down fallback)."""
    likely = sorted(
        (s for s in scenarios if s["key"] not in ("normal", FALLBACK_KEY)), key=lambda s: (-s["probability"], s["key"])
    )
    chosen = likely[:top] + [s for s in scenarios if s["key"] == FALLBACK_KEY]
    horizon = float(health.get("horizon_min", 15.0))
    out = [
        f"# On-call runbook: shedding {bundle['version']}",
        "",
        f"Written by `qres runbook` from the published bundle (created {bundle.get('created_at', '?')}, "
        f"MLflow run {bundle.get('mlflow_run_id', '?')}). Regenerate it after every promotion.",
        "",
        "## Every incident",
        "",
        "- **See what the policy does now**: `qres decide --down <dependency>` (the plan the services apply).",
        "- **Watch** the services' `qres serve` metrics: `qres_bundle_version` (which plan is loaded), "
        "`qres_decisions` by match (exact / planned for the observed state / closest covering), "
        "`qres_bundle_age_seconds`; and the health checks of the dependencies below.",
        f"- **Roll back** when a new plan misbehaves: `{ROLLBACK}` (the previous champion is republished as a new "
        "LATEST; clients load it on their next refresh). Check with `qres versions`.",
        "",
        "## Likely outages",
    ]
    for i, s in enumerate(chosen, start=1):
        deps = [*s["down"], *s["degraded"]]
        out += [
            "",
            f"### {i}. `{s['key']}`",
            "",
            f"Probability: {s['probability']:.4%} of the time.",
            "",
            "**What the policy does**",
            "",
        ]
        out += _what_it_does(s["actions"])
        out += ["", "**What to watch**", ""]
        for dep in deps[:6]:
            mean = _mean_outage_min(health, dep)
            line = f"- `{dep}` ({'down' if dep in s['down'] else 'degraded'}): mean outage {'-' if mean is None else f'{mean:.0f} min'}"
            if dep in s["down"]:
                line += f"; P(healthy within {horizon:.0f} min) = {health_score(health, dep, 'down'):.0%}"
            out.append(line)
        if len(deps) > 6:
            out.append(f"- and {len(deps) - 6} more: {', '.join(deps[6:])}")
        out += [
            "",
            "**Roll back**",
            "",
            f"- the plan sheds the wrong work: `{ROLLBACK}`, then `{decide_command(s['down'], s['degraded'])}` "
            "to confirm the restored plan",
            "",
            "**Drill results**",
            "",
        ]
        out += _drill_lines(matching_drill(drills, s["key"], s["down"], s["degraded"]), s["key"], deps, system)
    return "\n".join(out) + "\n"
