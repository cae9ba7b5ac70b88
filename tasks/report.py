"""One self-contained HTML report per run: failure model, scenarios, policy, solvers, backtest.

Charts are drawn with matplotlib's Agg backend and embedded as base64 PNG, tables are plain
HTML, and there is no script and no external reference, so the file opens anywhere (a mail
attachment, an MLflow artifact view) exactly as written.
"""

from __future__ import annotations

import base64
import html
import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = ["render_report"]

_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px}"
    "th{background:#f3f3f3}td.n{text-align:right}img{max-width:100%}.bad{color:#b00}.ok{color:#070}"
)


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return f'<img alt="chart" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _table(header: list[str], rows: list[list], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=n' if i in numeric else ''}>{html.escape(str(c))}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(x, spec: str = ",.2f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _failure_model(model) -> str:
    dep = model.per_dependency
    dep = dep[dep["outages"] > 0].sort_values(["p_down", "service_id"], ascending=[False, True]).head(25)
    parts = ["<h2>Failure model</h2>"]
    if len(dep):
        fig, ax = plt.subplots(figsize=(8, 0.3 * len(dep) + 1))
        y = np.arange(len(dep))[::-1]
        p = dep["p_down"].to_numpy()
        err = np.vstack([p - dep["p_down_lo"].to_numpy(), dep["p_down_hi"].to_numpy() - p]).clip(min=0)
        ax.errorbar(p, y, xerr=err, fmt="o", capsize=3)
        ax.set_yticks(y, dep["service_id"].tolist())
        ax.set_xscale("log")
        ax.set_xlabel("P(down), 95% interval from outage episodes")
        parts.append(_png(fig))
    co = model.co_failure
    names = sorted(set(co["a"]) | set(co["b"])) if len(co) else []
    if names:
        idx = {n: i for i, n in enumerate(names)}
        mat = np.zeros((len(names), len(names)))
        for a, b, w in zip(co["a"], co["b"], co["windows_joint"]):
            mat[idx[a], idx[b]] = mat[idx[b], idx[a]] = w
        fig, ax = plt.subplots(figsize=(0.35 * len(names) + 3, 0.35 * len(names) + 2))
        im = ax.imshow(np.log10(1 + mat), cmap="viridis")
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        fig.colorbar(im, label="log10(1 + windows down together)")
        ax.set_title("co-failure")
        parts.append(_png(fig))
    else:
        parts.append("<p>No two dependencies were ever down together.</p>")
    return "".join(parts)


def _coverage(scenarios) -> str:
    sc = [s for s in scenarios.scenarios if s.probability > 0]
    p = np.sort(np.array([s.probability for s in sc]))[::-1]
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.step(np.arange(1, len(p) + 1), np.cumsum(p), where="post")
    ax.axhline(scenarios.target_mass, color="grey", ls="--", label=f"target {scenarios.target_mass:.2%}")
    ax.set_xlabel("scenarios kept (most probable first)")
    ax.set_ylabel("probability mass covered")
    ax.legend()
    return (
        f"<h2>Scenario coverage</h2><p>{len(scenarios.scenarios)} scenarios, empirical mass covered "
        f"{scenarios.covered_mass:.4%}; by source {html.escape(str(scenarios.info.get('by_source')))}</p>" + _png(fig)
    )


def _by_scenario(decisions: bytes, top: int) -> list[tuple[str, list[dict]]]:
    """A decisions table's rows grouped per scenario, the ``top`` most probable first."""
    table = pq.read_table(pa.BufferReader(decisions))
    # The ``top`` scenarios first, then only their rows as Python (routing at 1,000 services: 4M
    # rows, several GB as dicts); a scenario's rows share its probability, and keep their order.
    first = table.select(["scenario_key", "probability"]).group_by("scenario_key", use_threads=False)
    first = first.aggregate([("probability", "first")]).to_pylist()
    keep = sorted(first, key=lambda r: (-r["probability_first"], r["scenario_key"]))[:top]
    by: dict[str, list] = {r["scenario_key"]: [] for r in keep}
    for r in table.filter(pc.is_in(table.column("scenario_key"), pa.array(list(by), pa.string()))).to_pylist():
        by[r["scenario_key"]].append(r)
    return sorted(by.items(), key=lambda kv: (-kv[1][0]["probability"], kv[0]))


def _policy(decisions: bytes, top: int = 15) -> str:
    rows = []
    for key, acts in _by_scenario(decisions, top):
        acts.sort(key=lambda r: -r["rank"])
        shed = [f"{a['workload_id']} {a['admit']:.0%}" for a in acts if a["admit"] < 1][:6]
        full = sum(1 for a in acts if a["admit"] >= 1)
        rows.append([key, _fmt(acts[0]["probability"], ".3g"), ", ".join(shed) or "nothing", full])
    return (
        "<h2>Shedding policy</h2><p>Per scenario (most probable first): what to shed first (lowest rank "
        "first, with the share still admitted) and how many workloads keep full service.</p>"
        + _table(["scenario", "P", "shed first", "kept at 100%"], rows, {1, 3})
    )


def _tiers(data: bytes) -> str:
    rows = sorted(pq.read_table(pa.BufferReader(data)).to_pylist(), key=lambda r: (r["tier"], r["workload_id"]))
    return (
        "<h2>Tier assignment</h2><p>One robust tier per workload across all scenarios (tier 0 is shed "
        "last), with the scales runtime load shedders use.</p>"
        + _table(
            ["workload", "tier", "criticality", "bucket", "priority"],
            [[r["workload_id"], r["tier"], r["criticality"], r["bucket"], r["priority"]] for r in rows],
            {1, 4},
        )
    )


def _standby(data: bytes, top: int = 15) -> str:
    rows = []
    for key, acts in _by_scenario(data, top):
        active = [f"{a['workload_id']} ({a['service_id']} at {a['site_id']})" for a in acts if a["admit"] >= 1]
        rows.append(
            [
                key,
                _fmt(acts[0]["probability"], ".3g"),
                ", ".join(active[:6]) or "none needed",
                _fmt(sum(a["value_per_hour"] for a in acts if a["admit"] >= 1)),
            ]
        )
    return (
        "<h2>Standby placement</h2><p>Per scenario (most probable first): the warm standbys to activate "
        "and the value per hour they restore.</p>"
        + _table(["scenario", "P", "activate", "value restored/h"], rows, {1, 3})
    )


def _routing(data: bytes, top: int = 15) -> str:
    rows = []
    for key, acts in _by_scenario(data, top):
        moved = [
            f"{a['service_id']}@{a['locality']} {a['admit']:.0%}" for a in acts if not a["healthy"] or a["admit"] < 1
        ]
        rows.append([key, _fmt(acts[0]["probability"], ".3g"), ", ".join(moved[:6]) or "as normal"])
    return (
        "<h2>Routing weights</h2><p>Per scenario (most probable first): endpoints whose share of their "
        "service's traffic changes (an endpoint at 0% is marked unhealthy in Envoy).</p>"
        + _table(["scenario", "P", "endpoints re-weighted"], rows, {1})
    )


def _solvers(rows: list[dict], top: int = 25) -> str:
    names = sorted({n for r in rows for n in r["candidates"]})
    body = []
    for r in rows[:top]:
        cands = r["candidates"]
        bound = max((c["bound"] for c in cands.values() if c["bound"] is not None), default=None)
        body.append(
            [r["scenario"], r["chosen"], _fmt(r["objective"]), _fmt(bound), _fmt(r["gap"], ".4%")]
            + [f"{_fmt(cands[n]['objective'])} / {cands[n]['time_s']:.3f}s" if n in cands else "-" for n in names]
        )
    return "<h2>Solvers</h2>" + _table(
        ["scenario", "chosen", "objective", "bound", "gap"] + [f"{n} (objective / time)" for n in names],
        body,
        {2, 3, 4},
    )


def _backtest(result: dict) -> str:
    ov, names = result["overall"], list(result["overall"])
    g = result["goal"]
    head = (
        f"<h2>Backtest</h2><p>{result['n_incidents']} incidents after {html.escape(result['split_at'])} "
        f"({result['n_impacting']} cost value), detection delay {result['delay_min']} min. Goal: at least "
        f"{g['share']:.0%} of the oracle's value <b class={'ok' if g['share_met'] else 'bad'}>"
        f"{'met' if g['share_met'] else 'not met'}</b>; CVaR at most {g['cvar_ratio']:.0%} of static tiers' "
        f"<b class={'ok' if g['cvar_met'] else 'bad'}>{'met' if g['cvar_met'] else 'not met'}</b>.</p>"
    )
    if not names:
        return head
    rows = [
        [
            n,
            _fmt(o["share"], ".2%"),
            _fmt(o["mean_share"], ".2%"),
            _fmt(o["loss"], ",.0f"),
            _fmt(o["cvar"], ",.0f"),
            _fmt(o["avoidable_loss"], ",.0f"),
            _fmt(o["avoidable_cvar"], ",.0f"),
            o["decision_changes"],
            o["min_share_violation_min"],
            _fmt(o["switch_min_median"], ".0f"),
            _fmt(o["kl_mean"], ".3f"),
        ]
        for n, o in ov.items()
    ]
    table = _table(
        [
            "policy",
            "value vs oracle",
            "mean share",
            "loss",
            f"CVaR{result['alpha']:.0%}",
            "avoidable loss",
            f"avoidable CVaR{result['alpha']:.0%}",
            "decision changes",
            "min-share violations (min)",
            "MTTSF (median min)",
            "KL",
        ],
        rows,
        set(range(1, 11)),
    )
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.5))
    a1.bar(names, [100 * (ov[n]["share"] or 0) for n in names], color="tab:blue")
    a1.set_ylabel("% of oracle value kept")
    x = np.arange(len(result["incidents"]))
    w = 0.8 / len(names)
    for j, n in enumerate(names):
        a2.bar(x + j * w, [i["policies"][n]["loss"] for i in result["incidents"]], w, label=n)
    a2.set_xlabel("incident")
    a2.set_ylabel("loss (value)")
    a2.legend(fontsize=7)
    return head + table + _png(fig)


def render_report(
    result: dict,
    *,
    title: str = "qresilience report",
    model=None,
    scenarios=None,
    decisions: bytes | None = None,
    solvers: list[dict] | None = None,
    families: dict[str, bytes] | None = None,
    drills: dict[str, dict] | None = None,
) -> str:
    """The HTML page. ``result`` is a backtest result; the other parts default to its trained policy.

    ``families`` maps ``tiers``, ``standby`` and ``routing`` to their decision tables (Parquet bytes)
    when the run solved them; ``drills`` holds the recorded drills (``tasks.drill.record.latest_records``).
    """
    train = result.get("train")
    model = model or (train.model if train else None)
    scenarios = scenarios or (train.scenarios if train else None)
    decisions = decisions or (train.decisions if train else None)
    solvers = solvers if solvers is not None else (train.solvers if train else None)
    parts = [
        f"<h1>{html.escape(title)}</h1><p>data {html.escape(str(result.get('data')))}; history "
        f"{html.escape(result['start'])} .. {html.escape(result['end'])}; policy fitted on the first "
        f"{result['train_fraction']:.0%}.</p>"
    ]
    if model is not None:
        parts.append(_failure_model(model))
    if scenarios is not None:
        parts.append(_coverage(scenarios))
    if decisions is not None:
        parts.append(_policy(decisions))
    renderers = {"tiers": _tiers, "standby": _standby, "routing": _routing}
    for name, data in sorted((families or {}).items()):
        if name in renderers:
            parts.append(renderers[name](data))
    if solvers:
        parts.append(_solvers(solvers))
    parts.append(_backtest(result))
    if drills:
        from tasks.drill.report import drill_section

        parts.append(drill_section(drills))
    return (
        f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body>{''.join(parts)}</body></html>"
    )
