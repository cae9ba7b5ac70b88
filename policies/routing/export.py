"""Routing's bundle files: per scenario, each endpoint's admitted share, Envoy weight and rank; Istio's distribute.

Why whole arrays per scenario: a 1,000-service fleet's routing files are 4M endpoint rows over 557
scenarios, and the per-service, per-row Python of the first form (a numpy call per service for
its weights, a dict per row, twice) was a quarter of the nightly's CPU, on a thread beside the
solve and the backtest. :func:`scenario_actions` computes a scenario's weights for every service
at once (the same largest-remainder arithmetic as :func:`envoy_weights`, element by element),
so the files' bytes are unchanged (``tests/policies/test_routing_export.py`` against the
per-service form; ``tests/test_decisions_unchanged.py``).
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from policies.routing.problem import RoutingProblem
from policies.scenarios.scenario_set import Scenario
from policies.solve.portfolio import PortfolioResult
from qres_client.schema import DECISIONS_ROUTING

__all__ = [
    "envoy_weights",
    "grouped_envoy_weights",
    "scenario_actions",
    "istio_distribute",
    "routing_decisions_table",
    "routing_policy_document",
    "routing_policy_json",
]


def envoy_weights(shares: Sequence[float], total: int = 100) -> list[int]:
    """Integer weights proportional to ``shares`` (largest remainder); >= 1 where the share is > 0."""
    s = np.clip(np.asarray(shares, dtype=np.float64), 0.0, None)
    s = np.where(s < 1e-9, 0.0, s)
    if s.sum() <= 0:
        return [0] * len(s)
    raw = s / s.sum() * total
    w = np.floor(raw).astype(np.int64)
    for i in np.lexsort((np.arange(len(s)), -(raw - w)))[: max(total - int(w.sum()), 0)]:
        w[i] += 1
    return np.where(s > 0, np.maximum(w, 1), 0).tolist()


def grouped_envoy_weights(shares, group: np.ndarray, total: int = 100) -> np.ndarray:
    """:func:`envoy_weights` of every group's shares at once (``group``: each element's group index).

    Each group's sum is taken over its elements in their order, as ``np.sum`` of the group's own
    array does, so every raw weight, floor and remainder is the same float as one group at a time.
    """
    s = np.clip(np.asarray(shares, dtype=np.float64), 0.0, None)
    s = np.where(s < 1e-9, 0.0, s)
    g = np.asarray(group, dtype=np.int64)
    order = np.argsort(g, kind="stable")  # by group, each group's elements in their own order
    gs = g[order]
    starts = np.flatnonzero(np.r_[True, gs[1:] != gs[:-1]]) if gs.size else np.zeros(0, np.int64)
    sums = np.zeros(int(g.max(initial=-1)) + 1)
    sums[gs[starts]] = [float(np.sum(part)) for part in np.split(s[order], starts[1:])] if gs.size else []
    tot = sums[g]
    live = tot > 0
    raw = np.zeros_like(s)
    raw[live] = s[live] / tot[live] * total
    w = np.floor(raw).astype(np.int64)
    short = np.maximum(total - np.bincount(g, weights=w, minlength=sums.size).astype(np.int64), 0)
    # within each group: largest remainder first, ties to the earlier element (envoy_weights' lexsort)
    by = np.lexsort((np.arange(s.size), -(raw - w), g))
    first = np.searchsorted(g[by], g[by], side="left")
    w[by] += (np.arange(s.size) - first < short[g[by]]) & live[by]
    return np.where(s > 0, np.maximum(w, 1), 0) * live


@dataclass(frozen=True)
class ScenarioActions:
    """One scenario's endpoints in rank order: index into the problem's endpoints, admitted share
    (rounded to 6 digits), Envoy weight; and every endpoint's weight in endpoint order."""

    order: np.ndarray
    admit: list[float]
    weight: np.ndarray
    weights: np.ndarray


def scenario_actions(p: RoutingProblem, x) -> ScenarioActions:
    """Ranked by admitted share, then endpoint id (endpoint ids are sorted: their index orders them)."""
    x = np.asarray(x)
    weights = grouped_envoy_weights(x, p.service)
    admit = np.array([round(v, 6) + 0.0 for v in x.astype(np.float64).tolist()])
    order = np.lexsort((np.arange(admit.size), -admit))
    return ScenarioActions(order, admit[order].tolist(), weights[order], weights)


def _actions(p: RoutingProblem, a: ScenarioActions) -> list[dict]:
    sids, svc = p.service_ids, p.service.tolist()
    return [
        {
            "endpoint_id": p.endpoint_ids[i],
            "service_id": sids[svc[i]],
            "locality": p.locality[i],
            "admit": admit,
            "envoy_weight": w,
            "healthy": w > 0,
            "rank": r,
        }
        for r, (i, admit, w) in enumerate(zip(a.order.tolist(), a.admit, a.weight.tolist()), start=1)
    ]


def istio_distribute(problem: RoutingProblem, x, homes: dict[str, str], weights=None) -> list[dict]:
    """``localityLbSetting.distribute`` entries per service: from its home region, percentages summing to 100."""
    w_all = grouped_envoy_weights(x, problem.service) if weights is None else weights
    out = []
    svc = np.asarray(problem.service)
    order = np.argsort(svc, kind="stable")
    starts = np.flatnonzero(np.r_[True, svc[order][1:] != svc[order][:-1]]) if svc.size else []
    for e in np.split(order, starts[1:]) if svc.size else []:
        w = w_all[e].tolist()
        if sum(w) == 0:
            continue
        sid = problem.service_ids[int(svc[e[0]])]
        out.append(
            {
                "service": sid,
                "from": f"{homes.get(sid, '*')}/*",
                "to": {f"{problem.locality[i]}/*": int(v) for i, v in zip(e.tolist(), w) if v > 0},
            }
        )
    return out


def routing_decisions_table(
    scenarios: Sequence[Scenario], problems: Sequence[RoutingProblem], results: Sequence[PortfolioResult]
) -> pa.Table:
    """A row per scenario and endpoint in rank order, one Arrow table a scenario (then one chunk)."""
    parts: list[pa.Table] = []
    for s, p, r in zip(scenarios, problems, results, strict=True):
        a = scenario_actions(p, r.best.solution)
        m = a.order.size
        if not m:
            continue
        one = pa.Table.from_pydict(
            {
                "scenario_key": [s.key],
                "down": [list(s.down)],
                "degraded": [list(s.degraded)],
                "effective_down": [list(s.effective_down)],
                "probability": [float(s.probability)],
            }
        ).take(np.zeros(m, dtype=np.int64))
        svc = np.asarray(p.service)
        cols = {
            **{name: one.column(name) for name in one.column_names},
            "workload_id": pa.array(p.endpoint_ids, pa.string()).take(a.order),
            "admit": pa.array(a.admit, pa.float64()),
            "rank": pa.array(np.arange(1, m + 1, dtype=np.int64)),
            "service_id": pa.array(p.service_ids, pa.string()).take(svc[a.order]),
            "locality": pa.array(p.locality, pa.string()).take(a.order),
            "envoy_weight": pa.array(a.weight),
            "healthy": pa.array(a.weight > 0),
        }
        parts.append(
            pa.Table.from_arrays([cols[f.name].cast(f.type) for f in DECISIONS_ROUTING], schema=DECISIONS_ROUTING)
        )
    if not parts:
        return DECISIONS_ROUTING.empty_table()
    return pa.concat_tables(parts).combine_chunks()


def routing_policy_document(
    scenarios: Sequence[Scenario],
    problems: Sequence[RoutingProblem],
    results: Sequence[PortfolioResult],
    docs: Sequence[dict],
) -> dict:
    out = []
    # A service's home does not depend on the scenario; a restricted document names only some services.
    homes = {sv["service_id"]: sv.get("home", "*") for d in docs for sv in d["services"]}
    for s, p, r in zip(scenarios, problems, results, strict=True):
        out.append(_scenario_doc(s, p, r, homes)[0])
    return {"schema_version": 1, "policy": "routing", "scenarios": out}


def _scenario_doc(s: Scenario, p: RoutingProblem, r: PortfolioResult, homes: dict, *, actions: str | None = None):
    """A scenario's entry of ``policy.json`` and its actions; ``actions`` in place of the list when given."""
    x = r.best.solution
    a = scenario_actions(p, x)
    doc = {
        "key": s.key,
        "probability": float(f"{s.probability:.12g}"),
        "solver": r.chosen,
        "objective": round(r.best.objective, 6),
        "bound": None if r.bound is None else round(r.bound, 6),
        "gap": None if r.gap is None else float(f"{r.gap:.12g}"),
        "actions": _actions(p, a) if actions is None else actions,
        "istio_distribute": istio_distribute(p, x, homes, a.weights),
    }
    return doc, a


_JSON = {"sort_keys": True, "separators": (",", ":"), "ensure_ascii": False, "allow_nan": False}  # encode_json's
_ACTIONS = "\x00actions\x00"  # a scenario's actions, written as text in place of this string


def routing_policy_json(
    scenarios: Sequence[Scenario],
    problems: Sequence[RoutingProblem],
    results: Sequence[PortfolioResult],
    docs: Sequence[dict],
) -> bytes:
    """``encode_json(routing_policy_document(...))``'s bytes, a scenario at a time, each scenario's
    actions written as text from its arrays: at 1,000 services they are 4M objects, and building a
    dict for each and encoding it took ~40 s of CPU beside the solve."""
    homes = {sv["service_id"]: sv.get("home", "*") for d in docs for sv in d["services"]}
    placeholder = json.dumps(_ACTIONS, **_JSON)
    quoted: dict[str, str] = {}  # every id's JSON string, encoded once for all scenarios
    out = io.BytesIO()
    out.write(b'{"policy":"routing","scenarios":[')
    for n, (s, p, r) in enumerate(zip(scenarios, problems, results, strict=True)):
        doc, a = _scenario_doc(s, p, r, homes, actions=_ACTIONS)
        head, tail = json.dumps(doc, **_JSON).split(placeholder)  # exactly one: ValueError otherwise
        out.write((("," if n else "") + head + _actions_json(p, a, quoted) + tail).encode("utf-8"))
    out.write(b'],"schema_version":1}\n')
    return out.getvalue()


def _actions_json(p: RoutingProblem, a: ScenarioActions, quoted: dict[str, str]) -> str:
    """The actions list as json.dumps writes it (sorted keys, compact; floats as repr, as json does)."""

    def q(values) -> list[str]:
        return [quoted.get(v) or quoted.setdefault(v, json.dumps(v, **_JSON)) for v in values]

    ep, loc, sid = q(p.endpoint_ids), q(p.locality), q(p.service_ids)
    svc = p.service.tolist()
    rows = [
        f'{{"admit":{admit!r},"endpoint_id":{ep[i]},"envoy_weight":{w},"healthy":{"true" if w > 0 else "false"},'
        f'"locality":{loc[i]},"rank":{r},"service_id":{sid[svc[i]]}}}'
        for r, (i, admit, w) in enumerate(zip(a.order.tolist(), a.admit, a.weight.tolist()), start=1)
    ]
    return "[" + ",".join(rows) + "]"
