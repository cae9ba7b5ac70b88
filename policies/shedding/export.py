"""Solved shedding problems as the files a bundle ships: decisions.parquet and policy.json.

Both rank each scenario's workloads the same way: admitted ones by density descending
(ties by id), then runnable-but-shed ones in the same order, then the ones that cannot
run, so a runtime service that cannot follow the shares can still follow the order.
Neither carries times or versions, and floats are rounded, so the same inputs and seed
give the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from policies.scenarios.scenario_set import Scenario
from policies.shedding.problem import SheddingProblem, check_levels
from policies.solve.portfolio import PortfolioResult
from qres_client.schema import DECISIONS_SHEDDING

__all__ = ["shedding_actions", "decisions_table", "policy_document"]


def shedding_actions(problem: SheddingProblem, levels_vec) -> list[dict]:
    """Ranked actions: admitted by density, then runnable-but-shed, then not runnable."""
    k = check_levels(problem, levels_vec)
    group = np.where(k > 0, 0, np.where(problem.runnable, 1, 2))
    pos = np.empty(len(k), dtype=np.int64)
    pos[problem.order] = np.arange(len(k))
    ranked = np.lexsort((pos, group))
    return [
        {"workload_id": problem.workload_ids[w], "admit": float(k[w]) / problem.levels, "rank": r}
        for r, w in enumerate(ranked.tolist(), start=1)
    ]


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
    scenarios: Sequence[Scenario], results: Sequence[PortfolioResult], problems: Sequence[SheddingProblem]
) -> pa.Table:
    """decisions.parquet rows, conforming to ``DECISIONS_SHEDDING``: scenario order, then rank."""
    cols: dict[str, list] = {f.name: [] for f in DECISIONS_SHEDDING}
    for s, r, p in _aligned(scenarios, results, problems):
        for a in shedding_actions(p, r.best.solution):
            cols["scenario_key"].append(s.key)
            cols["down"].append(list(s.down))
            cols["degraded"].append(list(s.degraded))
            cols["effective_down"].append(list(s.effective_down))
            cols["probability"].append(float(s.probability))
            cols["workload_id"].append(a["workload_id"])
            cols["admit"].append(a["admit"])
            cols["rank"].append(a["rank"])
    return pa.Table.from_pydict(cols, schema=DECISIONS_SHEDDING)


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


def policy_document(
    scenarios: Sequence[Scenario], results: Sequence[PortfolioResult], problems: Sequence[SheddingProblem]
) -> dict:
    """policy.json content: stable floats, no timestamps, versions or solve times.

    ``solver`` names the solver whose answer was chosen; ``status`` is ``OPTIMAL`` whenever
    a candidate proved that answer optimal (a heuristic that ties a proven optimum counts).
    """
    out = []
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
    return {"schema_version": 1, "policy": "shedding", "scenarios": out}
