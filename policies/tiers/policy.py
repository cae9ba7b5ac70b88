"""Tier assignment: one robust tier per workload for runtime load shedders, across all scenarios.

The family's front door: the tier problem from the shedding problems, its solve (the
portfolio, seeded as every family is) and its export, tiers.parquet and tiers.json, with
Google's criticalities (CRITICAL_PLUS, CRITICAL, SHEDDABLE_PLUS, SHEDDABLE) and
Netflix-style buckets with a 0..100 priority. The pieces:

- :mod:`policies.tiers.problem`: the model, its exact objective and feasibility;
- :mod:`policies.tiers.solvers`: ``greedy`` and ``cpsat`` behind one contract.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from policies.risk import cvar
from policies.solve.family import Family
from policies.tiers.problem import TierProblem, is_feasible_tiers, tier_losses, tier_objective, tier_problem_from_dict
from policies.tiers.solvers import TIER_SOLVERS
from qres_client.schema import DECISIONS_TIERS

__all__ = ["TIERS", "CRITICALITIES", "BUCKETS", "tier_labels", "tiers_table", "tiers_document"]

CRITICALITIES = ("CRITICAL_PLUS", "CRITICAL", "SHEDDABLE_PLUS", "SHEDDABLE")
BUCKETS = ("CRITICAL", "DEGRADED", "BEST_EFFORT", "BULK")

TIERS = Family(
    name="tiers",
    from_dict=tier_problem_from_dict,
    solvers=TIER_SOLVERS,
    objective=tier_objective,
    is_feasible=is_feasible_tiers,
    sense="min",
    default_solvers=tuple(TIER_SOLVERS),
    variables=lambda p: p.workload_ids,
)


def tier_labels(tier: int, tiers: int) -> tuple[str, str, int]:
    """Google criticality, Netflix-style bucket and a 0..100 priority (higher = shed later) of a tier."""
    k = 0 if tiers == 1 else round(tier * (len(CRITICALITIES) - 1) / (tiers - 1))  # first and last tiers at the ends
    priority = 100 if tiers == 1 else round(100 * (tiers - 1 - tier) / (tiers - 1))
    return CRITICALITIES[k], BUCKETS[k], int(priority)


def tiers_table(p: TierProblem, tier) -> pa.Table:
    rows = [(w, int(t), *tier_labels(int(t), p.tiers)) for w, t in zip(p.workload_ids, np.asarray(tier).tolist())]
    return pa.Table.from_pylist([dict(zip(DECISIONS_TIERS.names, r)) for r in rows], schema=DECISIONS_TIERS)


def tiers_document(p: TierProblem, result) -> dict:
    loss = tier_losses(p, result.best.solution)
    return {
        "schema_version": 1,
        "policy": "tiers",
        "tiers": p.tiers,
        "alpha": p.alpha,
        "lambda": p.lam,
        "solver": result.chosen,
        "objective": round(result.best.objective, 6),
        "bound": None if result.bound is None else round(result.bound, 6),
        "gap": None if result.gap is None else float(f"{result.gap:.12g}"),
        "expected_loss": round(float(p.probability @ loss), 6),
        "cvar_loss": round(cvar(loss, p.alpha, probabilities=p.probability), 6),
        "alternatives": [
            {
                "rank": i,
                "solver": a.info.solver,
                "objective": round(a.objective, 6),
                "expected_loss": round(float(p.probability @ tier_losses(p, a.solution)), 6),
            }
            for i, a in enumerate(result.alternatives, start=1)
        ],
        "workloads": [
            dict(
                zip(
                    ("workload_id", "tier", "criticality", "bucket", "priority"),
                    (w, int(t), *tier_labels(int(t), p.tiers)),
                )
            )
            for w, t in zip(p.workload_ids, np.asarray(result.best.solution).tolist())
        ],
    }
