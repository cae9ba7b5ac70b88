r"""The robust tier-assignment problem: its model, its exact objective (a replay of the shedder), feasibility.

Model (workloads w, tiers t = 0 (shed last) .. T-1 (shed first), scenarios s with probability
p_s, capacity C_s and runnable set R_s)::

    minimize   E_s[loss_s] + lambda * CVaR_alpha(loss_s)
    loss_s   = sum_{w in R_s} v_w (1 - u_ws)
    u_ws     = 1 iff tier(w) <= t*_s, where t*_s is the last tier whose cumulative runnable
               demand fits C_s: the runtime shedder drops the lowest tiers first, whole tiers.

Every solver is scored by :func:`tier_objective`, which replays the shedder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policies.risk import cvar

__all__ = [
    "TierProblem",
    "tier_problem_from_dict",
    "tier_problem_from_shedding",
    "tier_losses",
    "tier_objective",
    "is_feasible_tiers",
]


@dataclass(frozen=True, eq=False)
class TierProblem:
    key: str
    workload_ids: tuple[str, ...]
    value: np.ndarray  # (n,)
    demand: np.ndarray  # (n,)
    runnable: np.ndarray  # (S, n) bool
    capacity: np.ndarray  # (S,)
    probability: np.ndarray  # (S,), normalised to sum 1
    tiers: int = 4
    alpha: float = 0.9
    lam: float = 1.0

    def __post_init__(self) -> None:
        n, S = len(self.workload_ids), len(self.capacity)
        if list(self.workload_ids) != sorted(set(self.workload_ids)):
            raise ValueError(f"{self.key}: workload_ids must be unique and sorted")
        if self.runnable.shape != (S, n) or self.probability.shape != (S,) or S < 1:
            raise ValueError(f"{self.key}: runnable must be (S, n) and probability (S,), S >= 1")
        if self.tiers < 1 or not 0 <= self.alpha < 1 or self.lam < 0:
            raise ValueError(f"{self.key}: need tiers >= 1, 0 <= alpha < 1, lambda >= 0")
        if np.any(self.value < 0) or np.any(self.demand < 0) or not self.probability.sum() > 0:
            raise ValueError(f"{self.key}: values and demands must be >= 0 and some probability > 0")
        object.__setattr__(self, "probability", self.probability / self.probability.sum())

    @property
    def tolerance(self) -> float:
        return 1e-9 * max(float(self.capacity.max()), float(self.demand.sum()), 1.0)


def tier_problem_from_dict(doc: dict, *, key: str | None = None) -> TierProblem:
    """From the documented JSON form (docs/families.md, "Problem files and `qres solve`")."""
    wl = sorted(doc["workloads"], key=lambda w: str(w["workload_id"]))
    ids = [str(w["workload_id"]) for w in wl]
    sc = doc["scenarios"]
    runnable = np.array([[w not in set(s.get("not_runnable", [])) for w in ids] for s in sc], dtype=bool)
    return TierProblem(
        key=key or str(doc.get("key", "tiers")),
        workload_ids=tuple(ids),
        value=np.array([float(w["value_per_hour"]) for w in wl]),
        demand=np.array([float(w["demand"]) for w in wl]),
        runnable=runnable.reshape(len(sc), len(ids)),
        capacity=np.array([float(s["capacity"]) for s in sc]),
        probability=np.array([float(s["probability"]) for s in sc]),
        tiers=int(doc.get("tiers", 4)),
        alpha=float(doc.get("alpha", 0.9)),
        lam=float(doc.get("lambda", 1.0)),
    )


def tier_problem_from_shedding(
    problems, probabilities, *, tiers: int = 4, alpha: float = 0.9, lam: float = 1.0, key: str = "tiers"
) -> TierProblem:
    """From the per-scenario shedding problems (same workloads, in the same order) and their probabilities."""
    first = problems[0]
    return TierProblem(
        key=key,
        workload_ids=first.workload_ids,
        value=np.asarray(first.value_per_hour, dtype=float),
        demand=np.asarray(first.demand, dtype=float),
        runnable=np.array([pr.runnable for pr in problems], dtype=bool),
        capacity=np.array([pr.capacity for pr in problems], dtype=float),
        probability=np.maximum(np.asarray(probabilities, dtype=float), 0.0),
        tiers=tiers,
        alpha=alpha,
        lam=lam,
    )


def tier_losses(p: TierProblem, tier) -> np.ndarray:
    """Replay the runtime shedder: per scenario, the runnable value lost by dropping whole tiers."""
    t = np.asarray(tier, dtype=np.int64)
    onehot = np.zeros((len(t), p.tiers))
    onehot[np.arange(len(t)), t] = 1.0
    run = p.runnable.astype(np.float64)
    cum = np.cumsum((run * p.demand) @ onehot, axis=1)  # (S, T) cumulative runnable demand
    admitted = cum <= p.capacity[:, None] + p.tolerance
    admitted = np.cumprod(admitted, axis=1).astype(bool)  # prefix only
    kept = (run * p.value) @ (onehot * 1.0) * admitted
    return (run @ p.value) - kept.sum(axis=1)


def tier_objective(p: TierProblem, tier) -> float:
    tier = np.asarray(tier)
    if tier.shape != (len(p.workload_ids),):
        raise ValueError(f"{p.key}: expected {len(p.workload_ids)} tiers, got shape {tier.shape}")
    loss = tier_losses(p, tier)
    return float(p.probability @ loss) + p.lam * cvar(loss, p.alpha, probabilities=p.probability)


def is_feasible_tiers(p: TierProblem, tier) -> bool:
    tier = np.asarray(tier)
    return tier.shape == (len(p.workload_ids),) and bool(np.all((tier >= 0) & (tier < p.tiers)))
