"""Solved shedding problems as the files a bundle ships: decisions.parquet and policy.json.

Both rank each scenario's workloads the same way: admitted ones by density descending
(ties by id), then runnable-but-shed ones in the same order, then the ones that cannot
run, so a runtime service that cannot follow the shares can still follow the order.
Neither carries times or versions, and floats are rounded, so the same inputs and seed
give the same bytes. With ``timing`` (per scenario key, the :class:`TimedPlan` of the
time-coupled solve, :mod:`policies.shedding.anticipation`) the admitted levels are the timed
plan's and every action also carries ``act_after_s`` and ``hold_s``, and ``admit_max``, the share
admission control may run when capacity is there (:mod:`policies.shedding.admission`; the normal
state is then ranked in the order that anticipates the likely outages), ``DECISIONS_SHEDDING_ADMISSION``;
scenarios without a timed plan switch at once (``act_after_s`` 0) and hold the default. A plan with
long-run risk sheds (:mod:`policies.shedding.long_state`) adds ``then_after_s`` and ``then_admit`` to
every row (``DECISIONS_SHEDDING_LATE``; a row without a step repeats its ``act_after_s`` and ``admit``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from policies.scenarios.scenario_set import FALLBACK_KEY, NORMAL_KEY, Scenario
from policies.shedding.admission import (
    CatchUp,
    admission_caps,
    anticipating_order,
    containing,
    escalation_order,
    rank_order,
)
from policies.shedding.anticipation import TimedPlan
from policies.shedding.problem import SheddingProblem, check_levels, fill_levels
from policies.solve.portfolio import PortfolioResult
from qres_client.schema import DECISIONS_SHEDDING, DECISIONS_SHEDDING_ADMISSION, DECISIONS_SHEDDING_LATE

__all__ = ["shedding_actions", "decisions_table", "policy_document"]


def shedding_actions(
    problem: SheddingProblem,
    levels_vec,
    plan: TimedPlan | None = None,
    caps: Admission | None = None,
) -> list[dict]:
    """Ranked actions: admitted by density (or ``caps.order``), then runnable-but-shed, then not runnable."""
    k = check_levels(problem, levels_vec if plan is None else plan.levels)
    ranked = rank_order(problem, k, None if caps is None else caps.order)
    out = []
    for r, w in enumerate(ranked.tolist(), start=1):
        a = {"workload_id": problem.workload_ids[w], "admit": float(k[w]) / problem.levels, "rank": r}
        if plan is not None:
            a.update(act_after_s=float(plan.act_after_s[w]), hold_s=float(plan.hold_s))
            if plan.then_levels is not None:
                a.update(
                    then_after_s=float(plan.then_after_s[w]), then_admit=float(plan.then_levels[w]) / problem.levels
                )
        if caps is not None:
            a["admit_max"] = float(caps.levels[w]) / problem.levels
        out.append(a)
    return out


@dataclass(frozen=True)
class Admission:
    """A scenario's admission caps (levels) and its serving order (None: density)."""

    levels: np.ndarray
    order: np.ndarray | None = None


def _admission(scenarios, problems, plans, unseen=(), catch_up: CatchUp | None = None) -> dict[str, Admission]:
    """Every scenario's caps and serving order: the normal state's anticipates the likely outages (the
    scenarios, and ``unseen``: (probability, problem) of outages no scenario names, met by the runtime
    greedy; ``catch_up``: what the switches into each outage's own order cost, :func:`anticipating_order`),
    every other state's the likely escalations (the scenarios that contain it, :func:`escalation_order`)."""
    out = {s.key: Admission(admission_caps(p, k)) for s, p, k in zip(scenarios, problems, plans)}
    rest = [i for i, s in enumerate(scenarios) if s.key not in (NORMAL_KEY, FALLBACK_KEY)]
    density = {key: a.levels for key, a in out.items()}  # what each escalation's caps are scored with
    for i, up in containing(scenarios).items():
        s = scenarios[i]
        ranked = escalation_order(
            problems[i],
            plans[i],
            [problems[j] for j in up],
            [plans[j] for j in up],
            [density[scenarios[j].key] for j in up],
            s.probability,
            [scenarios[j].probability for j in up],
        )
        if ranked is not None:
            out[s.key] = Admission(ranked[1], ranked[0])
    at = next((i for i, s in enumerate(scenarios) if s.key == NORMAL_KEY), None)
    if at is not None:
        caps = out[NORMAL_KEY].levels
        live = [fill_levels(q, q.bounds.lo.copy()) for _, q in unseen]  # what the runtime greedy plans there
        order = anticipating_order(
            problems[at],
            caps,
            [problems[i] for i in rest] + [q for _, q in unseen],
            [plans[i] for i in rest] + live,
            [out[scenarios[i].key].levels for i in rest] + [admission_caps(q, k) for (_, q), k in zip(unseen, live)],
            [scenarios[i].probability for i in rest] + [p for p, _ in unseen],
            [out[scenarios[i].key].order for i in rest] + [None for _ in unseen],
            catch_up,
        )
        out[NORMAL_KEY] = Admission(caps, order)
    return out


def _plan(timing: Mapping[str, TimedPlan] | None, key: str, problem: SheddingProblem, solution, hold_s: float):
    """The scenario's timed plan; one that switches at once when the scenario has none."""
    if timing is None:
        return None
    if key in timing:
        return timing[key]
    k = check_levels(problem, solution)
    return TimedPlan(levels=np.asarray(k), act_after_s=np.zeros(len(k)), hold_s=hold_s)


def _aligned(scenarios, results, problems):
    if not len(scenarios) == len(results) == len(problems):
        raise ValueError(f"got {len(scenarios)} scenarios, {len(results)} results and {len(problems)} problems")
    for s, r, p in zip(scenarios, results, problems):
        if not s.key == r.problem_key == p.scenario_key:
            raise ValueError(
                f"misaligned inputs: scenario {s.key!r}, result {r.problem_key!r}, "
                f"problem {p.scenario_key!r}; pass them in the same order"
            )
    return zip(scenarios, results, problems)


def decisions_table(
    scenarios: Sequence[Scenario],
    results: Sequence[PortfolioResult],
    problems: Sequence[SheddingProblem],
    timing: Mapping[str, TimedPlan] | None = None,
    hold_s: float = 0.0,
    unseen: Sequence[tuple[float, SheddingProblem]] = (),
    catch_up: CatchUp | None = None,
) -> pa.Table:
    """decisions.parquet rows, conforming to ``DECISIONS_SHEDDING`` (``_ADMISSION`` with ``timing``):
    scenario order, then rank."""
    schema = DECISIONS_SHEDDING if timing is None else DECISIONS_SHEDDING_ADMISSION
    if timing is not None and any(t.then_levels is not None for t in timing.values()):
        schema = DECISIONS_SHEDDING_LATE
    cols: dict[str, list] = {f.name: [] for f in schema}
    rows = [
        (s, p, _plan(timing, s.key, p, r.best.solution, hold_s)) for s, r, p in _aligned(scenarios, results, problems)
    ]
    caps = None
    if timing is not None:
        caps = _admission(
            [s for s, _, _ in rows],
            [p for _, p, _ in rows],
            [np.asarray(t.levels) for _, _, t in rows],
            unseen,
            catch_up,
        )
    for (s, p, plan), r in zip(rows, results):
        for a in shedding_actions(p, r.best.solution, plan, None if caps is None else caps[s.key]):
            for name in ("act_after_s", "hold_s", "admit_max"):
                if name in cols:
                    cols[name].append(a[name])
            if "then_admit" in cols:  # a state without a long-run step repeats its plan
                cols["then_after_s"].append(a.get("then_after_s", a["act_after_s"]))
                cols["then_admit"].append(a.get("then_admit", a["admit"]))
            cols["scenario_key"].append(s.key)
            cols["down"].append(list(s.down))
            cols["degraded"].append(list(s.degraded))
            cols["effective_down"].append(list(s.effective_down))
            cols["probability"].append(float(s.probability))
            cols["workload_id"].append(a["workload_id"])
            cols["admit"].append(a["admit"])
            cols["rank"].append(a["rank"])
    return pa.Table.from_pydict(cols, schema=schema)


def _r(x: float | None, digits: int = 6) -> float | None:
    return None if x is None else round(float(x), digits) + 0.0  # + 0.0 turns -0.0 into 0.0


def _sig(x: float | None) -> float | None:
    return None if x is None else float(f"{float(x):.12g}") + 0.0


def _scenario_status(r: PortfolioResult) -> str:
    """OPTIMAL when the portfolio proved the chosen answer optimal, else the chosen solver's own status.

    A heuristic that ties with a proven optimum is chosen (it runs first), but the answer
    is then as proven as the optimum's; a reader of policy.json should see that. "Ties"
    is within 1e-9, the tolerance the portfolio re-checks objectives with.
    """
    best = r.best
    proven = r.gap == 0.0 and any(
        c.feasible
        and c.info.status == "OPTIMAL"
        and math.isclose(c.objective, best.objective, rel_tol=1e-9, abs_tol=1e-9)
        for c in r.candidates
    )
    return "OPTIMAL" if proven else best.info.status


_ROUNDED = ("admit", "act_after_s", "admit_max", "then_after_s", "then_admit")


def _timed_document(p: SheddingProblem, plan: TimedPlan, caps: Admission) -> dict:
    """What decisions.parquet ships for a state planned over time, and how it compares with the live rule."""
    return {
        "solver": plan.solver,
        "objective": _r(plan.objective),
        "live_objective": _r(plan.live_objective),
        "step_s": _r(plan.step_s),
        "hold_s": _r(plan.hold_s),
        "actions": [
            {**a, **{k: _r(v) for k, v in a.items() if k in _ROUNDED}}
            for a in shedding_actions(p, plan.levels, plan, caps)
        ],
    }


def policy_document(
    scenarios: Sequence[Scenario],
    results: Sequence[PortfolioResult],
    problems: Sequence[SheddingProblem],
    timing: Mapping[str, TimedPlan] | None = None,
    unseen: Sequence[tuple[float, SheddingProblem]] = (),
    catch_up: CatchUp | None = None,
) -> dict:
    """policy.json content: stable floats, no timestamps, versions or solve times.

    ``solver`` names the solver whose answer was chosen; ``status`` is ``OPTIMAL`` whenever
    a candidate proved that answer optimal (a heuristic that ties a proven optimum counts).
    ``actions`` is the state's static optimum; a state planned over time also has ``timed``: the
    plan decisions.parquet ships (levels, ``act_after_s``, ``hold_s``, ``admit_max``), its value over
    the horizon and the live rule's (``live_objective``).
    """
    out = []
    caps = None
    if timing is not None:
        plans = [_plan(timing, s.key, p, r.best.solution, 0.0).levels for s, r, p in zip(scenarios, results, problems)]
        caps = _admission(scenarios, problems, [np.asarray(k) for k in plans], unseen, catch_up)
    for s, r, p in _aligned(scenarios, results, problems):
        out.append(
            {
                "key": s.key,
                "down": list(s.down),
                "degraded": list(s.degraded),
                "effective_down": list(s.effective_down),
                "probability": _sig(s.probability),
                "expected_duration_min": _r(s.expected_duration_min),
                "source": s.source,
                "solver": r.chosen,
                "objective": _r(r.best.objective),
                "bound": _r(r.bound),
                "gap": _sig(r.gap),
                "status": _scenario_status(r),
                "min_share_relaxed": bool(p.bounds.relaxed),
                "actions": [{**a, "admit": _r(a["admit"])} for a in shedding_actions(p, r.best.solution)],
            }
        )
        if timing is not None and s.key in timing:
            out[-1]["timed"] = _timed_document(p, timing[s.key], caps[s.key])
    return {"schema_version": 1, "policy": "shedding", "scenarios": out}
