"""Standby placement: which standby copies to keep warm at which sites, for all scenarios at once.

The family's front door (model: :mod:`policies.standby.problem`; solvers:
:mod:`policies.standby.solvers`; QUBO: :mod:`policies.standby.qubo`).

Builder (:func:`standby_document`): V_j, the value per hour a service's outage stops, is the
sum of ``value_per_hour`` of the workloads that run on j or hard-require it; a scenario's
``down`` is its effective down set (root causes closed over hard dependencies); a site is down
with its region. Export: per scenario, every chosen standby with ``admit`` 1.0 when it should
be activated (its service is down, its site up, and it is the best such copy of the service),
else 0.0 (kept warm, not needed), ranked by the value it restores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from policies.scenarios.scenario_set import Scenario
from policies.solve.family import Family
from policies.solve.portfolio import PortfolioResult
from policies.standby.problem import StandbyProblem, is_feasible_standby, standby_objective, standby_problem_from_dict
from policies.standby.solvers import STANDBY_SOLVERS
from qres_client.schema import DECISIONS_STANDBY

__all__ = [
    "standby_document",
    "build_standby_problem",
    "STANDBY",
    "standby_actions",
    "standby_decisions_table",
    "standby_policy_document",
]


def standby_document(
    services: pa.Table, workloads: pa.Table, sites: pa.Table, candidates: pa.Table, scenarios: Sequence[Scenario]
) -> dict:
    """The JSON problem form (as in ``data/examples/standby.json``) from the telemetry tables."""
    value: dict[str, float] = {}
    for svc, req, v in zip(*(workloads.column(c).to_pylist() for c in ("service_id", "requires", "value_per_hour"))):
        for j in {svc, *req}:
            value[j] = value.get(j, 0.0) + float(v)
    known = set(services.column("service_id").to_pylist())
    return {
        "key": "standby",
        "sites": [
            dict(zip(("site_id", "region", "budget"), r))
            for r in zip(*(sites.column(c).to_pylist() for c in ("site_id", "region", "budget")))
        ],
        "candidates": [
            dict(zip(("candidate_id", "service_id", "site_id", "cost", "coverage"), r))
            for r in zip(
                *(
                    candidates.column(c).to_pylist()
                    for c in ("candidate_id", "service_id", "site_id", "cost", "coverage")
                )
            )
        ],
        "services": [{"service_id": j, "value_per_hour": round(v, 6)} for j, v in sorted(value.items()) if j in known],
        "scenarios": [
            {"key": s.key, "probability": float(s.probability), "down": sorted(set(s.effective_down) | set(s.down))}
            for s in scenarios
        ],
    }


def build_standby_problem(services, workloads, sites, candidates, scenarios) -> tuple[StandbyProblem, dict]:
    doc = standby_document(services, workloads, sites, candidates, scenarios)
    return standby_problem_from_dict(doc), doc


STANDBY = Family(
    name="standby",
    from_dict=standby_problem_from_dict,
    solvers=STANDBY_SOLVERS,
    objective=standby_objective,
    is_feasible=is_feasible_standby,
    sense="max",
    default_solvers=("greedy", "cpsat", "anneal"),
    variables=lambda p: p.candidate_ids,
)


def standby_actions(problem: StandbyProblem, doc: dict, x, scenario_down: set[str]) -> list[dict]:
    """Chosen standbys in one scenario: which to activate (admit 1.0), ranked by restored value."""
    region = {s["site_id"]: s.get("region") for s in doc["sites"]}
    value = {s["service_id"]: float(s["value_per_hour"]) for s in doc["services"]}
    chosen = [int(c) for c in np.flatnonzero(np.asarray(x) > 0)]
    worth = {}
    for c in chosen:
        site, svc = problem.site_ids[problem.site[c]], problem.service_ids[problem.service[c]]
        up = site not in scenario_down and (region.get(site) is None or region[site] not in scenario_down)
        worth[c] = value.get(svc, 0.0) * float(problem.coverage[c]) if up and svc in scenario_down else 0.0
    best: dict[int, int] = {}
    for c in sorted(chosen, key=lambda c: (-worth[c], problem.candidate_ids[c])):
        if worth[c] > 0:
            best.setdefault(int(problem.service[c]), c)
    active = set(best.values())
    ranked = sorted(chosen, key=lambda c: (c not in active, -worth[c], problem.candidate_ids[c]))
    return [
        {
            "candidate_id": problem.candidate_ids[c],
            "service_id": problem.service_ids[problem.service[c]],
            "site_id": problem.site_ids[problem.site[c]],
            "admit": 1.0 if c in active else 0.0,
            "value_per_hour": round(worth[c], 6) + 0.0,
            "rank": r,
        }
        for r, c in enumerate(ranked, start=1)
    ]


def standby_decisions_table(scenarios: Sequence[Scenario], problem: StandbyProblem, doc: dict, x) -> pa.Table:
    """decisions.parquet rows conforming to ``DECISIONS_STANDBY``: scenario order, then rank."""
    cols: dict[str, list] = {f.name: [] for f in DECISIONS_STANDBY}
    for s in scenarios:
        for a in standby_actions(problem, doc, x, set(s.effective_down) | set(s.down)):
            for name, val in (
                ("scenario_key", s.key),
                ("down", list(s.down)),
                ("degraded", list(s.degraded)),
                ("effective_down", list(s.effective_down)),
                ("probability", float(s.probability)),
                ("workload_id", a["candidate_id"]),
                ("admit", a["admit"]),
                ("rank", a["rank"]),
                ("service_id", a["service_id"]),
                ("site_id", a["site_id"]),
                ("value_per_hour", a["value_per_hour"]),
            ):
                cols[name].append(val)
    return pa.Table.from_pydict(cols, schema=DECISIONS_STANDBY)


def _r(v: float | None, digits: int = 6) -> float | None:
    return None if v is None else round(float(v), digits) + 0.0


def standby_policy_document(
    scenarios: Sequence[Scenario], problem: StandbyProblem, doc: dict, result: PortfolioResult
) -> dict:
    """policy.json: the chosen set, ranked alternatives with expected loss, per-scenario actions."""

    def chosen(x):
        return [problem.candidate_ids[c] for c in np.flatnonzero(np.asarray(x) > 0)]

    return {
        "schema_version": 1,
        "policy": "standby",
        "solver": result.chosen,
        "objective": _r(result.best.objective),
        "bound": _r(result.bound),
        "gap": None if result.gap is None else float(f"{result.gap:.12g}"),
        "value_at_stake": _r(problem.at_stake),
        "chosen": chosen(result.best.solution),
        "alternatives": [
            {
                "rank": i,
                "solver": a.info.solver,
                "objective": _r(a.objective),
                "expected_loss": _r(problem.at_stake - a.objective),
                "chosen": chosen(a.solution),
            }
            for i, a in enumerate(result.alternatives, start=1)
        ],
        "scenarios": [
            {
                "key": s.key,
                "probability": float(f"{s.probability:.12g}"),
                "actions": standby_actions(problem, doc, result.best.solution, set(s.effective_down) | set(s.down)),
            }
            for s in scenarios
        ],
    }
