r"""Load shedding: per outage scenario, which workloads to admit, how much, in what order.

The family's front door: callers (``tasks/solve.py``) build problems from the telemetry
tables here, solve them as a portfolio and export them, and need not know how the family
is cut into modules. The pieces, each with its own reasons:

- :mod:`policies.shedding.problem`: the model, its exact objective and feasibility;
- :mod:`policies.shedding.solvers`: ``greedy``, ``cpsat`` and ``anneal`` behind one contract;
- :mod:`policies.shedding.qubo`: the QUBO form and the repair of samples;
- :mod:`policies.shedding.export`: decisions.parquet and policy.json;
- :mod:`policies.shedding.fallback`: fallback.json, the model for the client's runtime greedy.

Builder (:func:`build_shedding_problems`): C(s) is the capacity of the region services
(kind == "region") not in effective_down, a degraded region counting
``degraded_capacity_share`` of it. A workload is runnable iff neither its service nor any
of its ``requires`` is in effective_down (closed again over the hard dependency edges).
r_w(s) sums its ``risks``: cost_per_hour when depends_on is down, ``degraded_risk_share``
of it when depends_on is degraded.

:data:`SHEDDING` (``SHEDDING.solve_each``) runs the solvers as a portfolio per scenario, each
scenario with a seed derived from its content, so a re-run of a few scenarios repeats the nightly
answers; :func:`shedding_files` writes what the bundle ships.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from policies.graph import close_down_set, hard_dependents
from policies.scenarios.scenario_set import Scenario, scenario_key
from policies.shedding.admission import CatchUp
from policies.shedding.anticipation import TimedPlan
from policies.shedding.export import decisions_table, policy_document, shedding_actions
from policies.shedding.fallback import FALLBACK_FILE, fallback_document
from policies.shedding.problem import (
    AdmissionBounds,
    SheddingProblem,
    is_feasible_shedding,
    shedding_objective,
    shedding_problem_from_dict,
    shedding_problem_to_dict,
)
from policies.shedding.qubo import SheddingQubo, build_shedding_qubo
from policies.shedding.solvers import (
    SHEDDING_SOLVERS,
    AnnealingSheddingSolver,
    CpSatSheddingSolver,
    GreedySheddingSolver,
)
from policies.solve.family import Family
from policies.solve.portfolio import PortfolioResult
from policies.switching import switch_costs
from qres_client.bundle import encode_json, encode_parquet

__all__ = [
    # defined here
    "build_shedding_problems",
    "SHEDDING",
    "shedding_files",
    # re-exported: the family's public API in one place
    "SheddingProblem",
    "AdmissionBounds",
    "shedding_problem_from_dict",
    "shedding_problem_to_dict",
    "SheddingQubo",
    "GreedySheddingSolver",
    "CpSatSheddingSolver",
    "AnnealingSheddingSolver",
    "SHEDDING_SOLVERS",
    "shedding_objective",
    "is_feasible_shedding",
    "build_shedding_qubo",
    "shedding_actions",
    "decisions_table",
    "policy_document",
]


# -- problem builder --------------------------------------------------------------------


def _incidence(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    return sp.csr_matrix((vals.astype(np.float64), (rows, cols)), shape=shape)


def build_shedding_problems(
    services: pa.Table,
    dependencies: pa.Table,
    workloads: pa.Table,
    scenarios: Sequence[Scenario],
    *,
    levels: int = 4,
    degraded_capacity_share: float = 0.5,
    degraded_risk_share: float = 0.5,
) -> list[SheddingProblem]:
    """One :class:`SheddingProblem` per scenario, in scenario order (see the module docstring).

    Vectorised: service ids become matrix columns, so runnability, risk and capacity of
    every (workload, scenario) pair come from three sparse-dense products.
    """
    for name, share in (
        ("degraded_capacity_share", degraded_capacity_share),
        ("degraded_risk_share", degraded_risk_share),
    ):
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{name} must be within 0..1, got {share!r}")
    svc_ids = services.column("service_id").to_pylist()
    if len(set(svc_ids)) != len(svc_ids):
        raise ValueError("services: service_id must be unique")
    wl = workloads.sort_by("workload_id")
    wids = wl.column("workload_id").to_pylist()
    if len(set(wids)) != len(wids):
        raise ValueError("workloads: workload_id must be unique")
    edges = zip(*(dependencies.column(c).to_pylist() for c in ("service_id", "depends_on", "hard")))
    dependents = hard_dependents(edges)
    req, risks = wl.column("requires").combine_chunks(), wl.column("risks").combine_chunks()
    req_ids, req_rows = pc.list_flatten(req).to_pylist(), pc.list_parent_indices(req).to_numpy()
    flat_risk, risk_rows = pc.list_flatten(risks), pc.list_parent_indices(risks).to_numpy()
    risk_ids = flat_risk.field("depends_on").to_pylist()
    own_ids = wl.column("service_id").to_pylist()
    closed = [close_down_set(set(s.effective_down) | set(s.down), dependents) for s in scenarios]
    names = set(svc_ids).union(req_ids, risk_ids, own_ids, *closed, *(s.degraded for s in scenarios))
    code = {s: i for i, s in enumerate(sorted(names))}

    def codes(ids) -> np.ndarray:
        return np.array([code[x] for x in ids], dtype=np.int64)

    n, m, ns = len(wids), len(code), len(scenarios)
    needs = _incidence(
        np.concatenate([req_rows, np.arange(n)]),
        np.concatenate([codes(req_ids), codes(own_ids)]),
        np.ones(len(req_ids) + n),
        (n, m),
    )  # own service counts as a requirement
    risk = _incidence(risk_rows, codes(risk_ids), _numpy(flat_risk.field("cost_per_hour")), (n, m))
    down, degraded = np.zeros((m, ns)), np.zeros((m, ns))
    for j, (s, eff) in enumerate(zip(scenarios, closed)):
        down[codes(sorted(eff)), j] = 1.0
        degraded[codes(sorted(set(s.degraded) - eff)), j] = 1.0
    is_region = np.array([k == "region" for k in services.column("kind").to_pylist()], dtype=bool)
    region_cap = np.zeros(m)
    region_cap[codes(svc_ids)] = np.where(is_region, _numpy(services.column("capacity")), 0.0)
    capacity = region_cap @ (1.0 - down - (1.0 - degraded_capacity_share) * degraded)
    runnable = np.asarray(needs @ down) == 0
    risk_s = np.asarray(risk @ (down + degraded_risk_share * degraded))
    value, demand, min_share = (_numpy(wl.column(c)) for c in ("value_per_hour", "demand", "min_share"))
    return [
        SheddingProblem(
            scenario_key=s.key,
            workload_ids=tuple(wids),
            value_per_hour=value,
            risk_per_hour=risk_s[:, j],
            demand=demand,
            min_share=min_share,
            runnable=runnable[:, j],
            capacity=float(capacity[j]),
            levels=levels,
        )
        for j, s in enumerate(scenarios)
    ]


def _numpy(col) -> np.ndarray:
    return np.asarray(
        col.to_numpy(zero_copy_only=False) if isinstance(col, pa.Array) else col.to_numpy(), dtype=np.float64
    )


# -- the family: one solve path, one set of bundle files ------------------------------------

SHEDDING = Family(
    name="shedding",
    from_dict=shedding_problem_from_dict,
    solvers=SHEDDING_SOLVERS,
    objective=shedding_objective,
    is_feasible=is_feasible_shedding,
    sense="max",
    default_solvers=("greedy", "cpsat", "anneal"),
    variables=lambda p: p.workload_ids,
    stop_when_proven=True,
)
"""CP-SAT reads ``time_limit_s`` as deterministic work units, with the wall clock only as a net
(:mod:`policies.solve.cpsat`), so a loaded machine does not change its answers; each scenario's
seed comes from the run seed and its content, so re-solving a subset repeats the nightly answers.
The annealer runs only where CP-SAT did not prove the optimum (``stop_when_proven``): it cannot
win there, and on a fleet's scenarios it was 83% of the solve (docs/performance.md)."""


def shedding_files(
    tables: Mapping[str, pa.Table],
    scenarios: Sequence[Scenario],
    problems: Sequence[SheddingProblem],
    results: Sequence[PortfolioResult],
    *,
    levels: int,
    timing: Mapping[str, TimedPlan] | None = None,
    hold_s: float = 0.0,
    delay_min: float | None = None,
) -> dict[str, bytes]:
    """The shedding bundle's decision files, as the nightly publishes them and the backtest replays them.

    ``timing``: the time-coupled plans (:func:`policies.shedding.anticipation.plan_over_time`); with them
    the normal state's order also weighs the region outages the history never showed (:func:`unseen_outages`)
    and, given the detection delay ``delay_min``, what switching into and out of its mix costs
    (:class:`~policies.shedding.admission.CatchUp`)."""
    unseen = unseen_outages(tables, scenarios, levels=levels) if timing is not None else ()
    catch_up = None
    if timing is not None and delay_min is not None:
        catch_up = CatchUp(float(delay_min) / 60.0, switch_costs(tables["workloads"], levels=levels))
    return {
        "decisions.parquet": encode_parquet(
            decisions_table(scenarios, results, problems, timing, hold_s, unseen, catch_up)
        ),
        "policy.json": encode_json(policy_document(scenarios, results, problems, timing, unseen, catch_up)),
        # the model again, compactly, for the client's runtime greedy on states no scenario names
        FALLBACK_FILE: encode_json(
            fallback_document(tables["services"], tables["dependencies"], tables["workloads"], levels=levels)
        ),
    }


def unseen_outages(tables: Mapping[str, pa.Table], scenarios: Sequence[Scenario], *, levels: int):
    """(probability, problem) of every region outage no scenario names: the outages a normal state's
    order must not be blind to. Each weighs half the probability of the rarest pattern the history
    showed (Jeffreys' 0.5 pseudo-count against a pattern seen once); none when no pattern was seen."""
    seen = [
        s.probability for s in scenarios if "empirical" in s.source and s.probability > 0 and (s.down or s.degraded)
    ]
    if not seen:
        return ()
    services, dependencies = tables["services"], tables["dependencies"]
    dependents = hard_dependents(
        zip(
            dependencies.column("service_id").to_pylist(),
            dependencies.column("depends_on").to_pylist(),
            dependencies.column("hard").to_pylist(),
        )
    )
    named = {s.key for s in scenarios}
    regions = sorted(
        sid
        for sid, kind in zip(services.column("service_id").to_pylist(), services.column("kind").to_pylist())
        if kind == "region"
    )
    p = 0.5 * min(seen)
    unseen = [
        Scenario(key, (r,), (), tuple(sorted(close_down_set([r], dependents))), p, 0.0, "unseen")
        for r in regions
        if (key := scenario_key([r])) not in named
    ]
    if not unseen:
        return ()
    made = build_shedding_problems(services, dependencies, tables["workloads"], unseen, levels=levels)
    return tuple((s.probability, q) for s, q in zip(unseen, made))
