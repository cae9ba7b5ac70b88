r"""Time-coupled shedding: one observed state, decisions per step over its expected horizon.

The static problem (:mod:`policies.shedding.problem`) is a knapsack per state that a live
greedy solves as well as any solver. What a live rule cannot weigh is *time*: how long the
state is likely to last (from the fitted failure model), what it costs to switch a workload's
share (:mod:`policies.switching`, the rule the backtest charges) now and again when the state ends, and a minimum
dwell so flaps do not make the policy thrash. Model (workloads w, steps t = 0..T-1 of
``step_s`` seconds; k_{w,t} integer levels, k_{w,-1} = ``prev``, the levels in force on entry)::

    maximize   sum_t S_t h sum_w net_w k_{w,t} / L                     value while the state lasts
             - sum_t S_t sum_w sw_w(k_{w,t-1} -> k_{w,t})              switching inside it
             - sum_t E_t sum_x q_x sum_w sw_w(k_{w,t} -> exit_{x,w})   switching when it ends
             - sum_t S_t h sum_{w<v} c_{wv} k_{w,t} k_{v,t} / L^2       correlated risk
    s.t.       lo_w <= k_{w,t} <= hi_w,  sum_w d_w k_{w,t} / L <= C    per step
               two changes of one workload are >= dwell steps apart
               (optionally) at most max_changes changes per workload

with h = step_s / 3600, S_t the probability that the state still holds in step t, E_t the
probability that it ends right after step t (E_{T-1} takes the rest), q_x the share of endings
that hand over to exit plan x (recovery to the normal plan; for a precursor, also escalation to
the plan of the state it escalates to: acting early saves that switch, a false alarm pays twice), and
sw_w(a -> b) = up_w (b - a)^+ + down_w (a - b)^+, and c_{wv} >= 0 (``pair_cost``, per hour at full
share of both) what keeping two workloads whose risks escalate together costs beyond the sum of
their risks (:mod:`policies.shedding.correlated`: from the joint model). Bounds: lo from the static problem (minimum
shares, relaxed the same way), hi = L when runnable, else 0. Unlike the static problem a
workload with net <= 0 may keep its share for a while, since shedding it costs a switch too.

A solution is the flat step-major vector k[t * n + w] (``variables`` names ``w@t``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from policies.shedding.problem import SheddingProblem, fill_levels, shedding_problem_from_dict, shedding_problem_to_dict

__all__ = [
    "HorizonProblem",
    "horizon_objective",
    "is_feasible_horizon",
    "horizon_problem_from_dict",
    "horizon_problem_to_dict",
    "hold_trajectory",
    "greedy_levels",
    "change_steps",
    "horizon_variables",
]


@dataclass(frozen=True, eq=False)
class HorizonProblem:
    """One observed state's time-coupled problem; arrays are aligned with ``base.workload_ids``."""

    base: SheddingProblem
    step_s: float
    survival: np.ndarray  # S_t, non-increasing in [0, 1]
    prev: np.ndarray  # levels in force when the state is entered
    exit_levels: np.ndarray  # [x, w]: the plans the state hands over to when it ends (normal first)
    down_cost: np.ndarray  # value lost per level shed (policies.switching: SwitchCosts.per_level)
    up_cost: np.ndarray  # value lost per level re-admitted
    dwell: int = 1  # minimum steps between two changes of one workload
    exit_share: np.ndarray | None = None  # q_x, summing to 1; None = one exit plan
    max_changes: int | None = None  # per workload over the horizon; 1 = the client's act_after rule
    pair_cost: np.ndarray | sp.sparray | None = None  # [w, v] c_wv >= 0, upper triangle (w < v) only; None = no pairs

    def __post_init__(self) -> None:
        n, key, L = len(self.base.workload_ids), self.base.key, self.base.levels
        s = np.array(self.survival, dtype=np.float64).reshape(-1)
        if s.size < 1 or not np.all(np.isfinite(s)) or np.any((s < 0) | (s > 1)) or np.any(np.diff(s) > 1e-12):
            raise ValueError(f"{key}: survival must be a non-empty, non-increasing sequence within 0..1")
        if not self.step_s > 0 or int(self.dwell) != self.dwell or self.dwell < 1:
            raise ValueError(f"{key}: step_s must be > 0 and dwell an integer >= 1")
        if self.max_changes is not None and (int(self.max_changes) != self.max_changes or self.max_changes < 1):
            raise ValueError(f"{key}: max_changes must be None or an integer >= 1")
        arrays = {"survival": s}
        for name in ("prev", "exit_levels"):
            a = np.array(getattr(self, name), dtype=np.int64)
            a = a.reshape(-1) if name == "prev" else a.reshape(-1, n)
            if a.shape[-1] != n or a.size == 0 or np.any((a < 0) | (a > L)):
                raise ValueError(f"{key}: {name} must be rows of {n} levels within 0..{L}")
            arrays[name] = a
        q = np.ones(1) if self.exit_share is None else np.array(self.exit_share, dtype=np.float64).reshape(-1)
        if q.shape != (arrays["exit_levels"].shape[0],) or np.any(q < 0) or abs(q.sum() - 1) > 1e-9:
            raise ValueError(f"{key}: exit_share must give one share >= 0 per exit plan, summing to 1")
        arrays["exit_share"] = q
        for name in ("down_cost", "up_cost"):
            a = np.array(getattr(self, name), dtype=np.float64).reshape(-1)
            if a.shape != (n,) or not np.all(np.isfinite(a)) or np.any(a < 0):
                raise ValueError(f"{key}: {name} must be {n} finite costs >= 0")
            arrays[name] = a
        if self.pair_cost is not None and sp.issparse(self.pair_cost):
            # A state of a large fleet pairs few of its workloads: n x n dense per state held
            # every state's plan at once (1,500 workloads: 18 MB a state, GBs over a fleet's states).
            c = sp.csr_array(self.pair_cost, dtype=np.float64, copy=True)
            c.sum_duplicates()
            c.sort_indices()
            r = np.repeat(np.arange(c.shape[0]), np.diff(c.indptr))
            if c.shape != (n, n) or not np.all(np.isfinite(c.data)) or np.any(c.data < 0) or np.any(c.indices <= r):
                raise ValueError(f"{key}: pair_cost must be an {n}x{n} strictly upper-triangular matrix of costs >= 0")
            object.__setattr__(self, "pair_cost", c)
        elif self.pair_cost is not None:
            c = np.array(self.pair_cost, dtype=np.float64)
            if c.shape != (n, n) or not np.all(np.isfinite(c)) or np.any(c < 0) or np.any(np.tril(c) != 0):
                raise ValueError(f"{key}: pair_cost must be an {n}x{n} strictly upper-triangular matrix of costs >= 0")
            arrays["pair_cost"] = c
        for name, a in arrays.items():
            a.setflags(write=False)
            object.__setattr__(self, name, a)
        object.__setattr__(self, "step_s", float(self.step_s))
        object.__setattr__(self, "dwell", int(self.dwell))

    @property
    def key(self) -> str:
        return self.base.key

    @property
    def steps(self) -> int:
        return int(self.survival.size)

    @functools.cached_property
    def leave(self) -> np.ndarray:
        """E_t: the state ends right after step t; the last step takes what survives the horizon."""
        s = self.survival
        e = np.append(s[:-1] - s[1:], s[-1])
        e.setflags(write=False)
        return e

    @functools.cached_property
    def lo(self) -> np.ndarray:
        return self.base.bounds.lo

    @functools.cached_property
    def hi(self) -> np.ndarray:
        hi = np.where(self.base.runnable, self.base.levels, 0).astype(np.int64)
        hi.setflags(write=False)
        return hi

    @functools.cached_property
    def pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(w, v, c_wv) of the pairs with a positive correlated cost, w < v."""
        if self.pair_cost is None:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        if sp.issparse(c := self.pair_cost):  # rows, then columns: np.nonzero's order on the dense form
            w = np.repeat(np.arange(c.shape[0]), np.diff(c.indptr))
            keep = c.data > 0
            return w[keep], c.indices[keep].astype(np.int64), c.data[keep]
        w, v = np.nonzero(c > 0)
        return w, v, c[w, v]

    def pair_block(self, idx: np.ndarray) -> np.ndarray | None:
        """The dense pair costs among the workloads ``idx`` (a restriction's free ones); None for none."""
        if self.pair_cost is None:
            return None
        if sp.issparse(self.pair_cost):
            return self.pair_cost[idx][:, idx].toarray()
        return self.pair_cost[np.ix_(idx, idx)]

    @functools.cached_property
    def pair_per_level(self) -> np.ndarray:
        """[t, pair]: what one level of each of the pair's workloads costs together in step t."""
        h = self.step_s / 3600.0 / self.base.levels**2
        return np.outer(self.survival, self.pairs[2]) * h

    @functools.cached_property
    def value_per_level(self) -> np.ndarray:
        """[t, w]: what one level of w earns in step t (survival-weighted)."""
        return np.outer(self.survival, self.base.net) * (self.step_s / 3600.0 / self.base.levels)


def horizon_variables(p: HorizonProblem) -> list[str]:
    return [f"{w}@{t}" for t in range(p.steps) for w in p.base.workload_ids]


def _grid(p: HorizonProblem, x) -> np.ndarray:
    k = np.asarray(x)
    if k.shape != (p.steps * len(p.base.workload_ids),):
        raise ValueError(f"{p.key}: expected {p.steps * len(p.base.workload_ids)} levels, got shape {k.shape}")
    return k.reshape(p.steps, -1)


def _switch(p: HorizonProblem, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sw(a -> b) summed over workloads, per row."""
    d = b - a
    return np.maximum(d, 0) @ p.up_cost + np.maximum(-d, 0) @ p.down_cost


def horizon_objective(p: HorizonProblem, x) -> float:
    """The exact objective of the module docstring, in value units."""
    k = _grid(p, x).astype(np.float64)
    before = np.vstack([p.prev[None, :].astype(np.float64), k[:-1]])
    value = float(np.sum(p.value_per_level * k))
    inside = float(p.survival @ _switch(p, before, k))
    after = sum(
        q * float(p.leave @ _switch(p, k, e[None, :].astype(np.float64))) for q, e in zip(p.exit_share, p.exit_levels)
    )
    w, v, _ = p.pairs
    together = float(np.sum(p.pair_per_level * k[:, w] * k[:, v])) if w.size else 0.0
    return value - inside - after - together


def change_steps(p: HorizonProblem, x) -> list[np.ndarray]:
    """Per workload, the steps at which its level changes (step 0 compares with ``prev``)."""
    k = _grid(p, x)
    before = np.vstack([p.prev[None, :], k[:-1]])
    changed = k != before
    return [np.flatnonzero(changed[:, w]) for w in range(k.shape[1])]


def is_feasible_horizon(p: HorizonProblem, x) -> bool:
    """Integer levels within bounds, capacity (+tol) at every step, and the dwell between changes."""
    k = _grid(p, x)
    if not np.issubdtype(k.dtype, np.integer):
        if not np.all(np.isfinite(k)) or not np.all(k == np.round(k)):
            return False
        k = np.round(k).astype(np.int64)
    if np.any(k < p.lo) or np.any(k > p.hi):
        return False
    b = p.base
    if np.any(k @ b.demand / b.levels > b.capacity + b.tolerance):
        return False
    changes = change_steps(p, k.reshape(-1))
    if p.max_changes is not None and any(c.size > p.max_changes for c in changes):
        return False
    return all(np.all(np.diff(c) >= p.dwell) for c in changes)


def hold_trajectory(p: HorizonProblem, levels) -> np.ndarray:
    """``levels`` held at every step (a live rule's plan: switch on sight, stay), flat."""
    return np.tile(np.asarray(levels, dtype=np.int64), p.steps)


def greedy_levels(p: HorizonProblem) -> np.ndarray:
    """The static knapsack's greedy answer for the observed state (what a live greedy switches to)."""
    return fill_levels(p.base, p.base.bounds.lo.copy())


def horizon_problem_from_dict(doc: dict) -> HorizonProblem:
    """From the documented JSON form (``data/examples/horizon.json``): a shedding problem plus time."""
    base = shedding_problem_from_dict(doc)
    ids = base.workload_ids
    by_id = {str(w["workload_id"]): w for w in doc["workloads"]}

    def col(name: str, default: float) -> list:
        return [by_id[w].get(name, default) for w in ids]

    return HorizonProblem(
        base=base,
        step_s=float(doc["step_s"]),
        survival=np.array(doc["survival"], dtype=np.float64),
        prev=np.array(col("prev", 0), dtype=np.int64),
        exit_levels=np.array(doc.get("exit_levels") or [col("exit", 0)], dtype=np.int64),
        exit_share=doc.get("exit_share"),
        max_changes=doc.get("max_changes"),
        down_cost=np.array(col("down_cost", 0.0), dtype=np.float64),
        up_cost=np.array(col("up_cost", 0.0), dtype=np.float64),
        dwell=int(doc.get("dwell", 1)),
        pair_cost=_pair_matrix(ids, doc.get("pairs")),
    )


def _pair_matrix(ids: tuple[str, ...], pairs) -> np.ndarray | None:
    """``[[w, v, cost], ...]`` (ids, either order) as the upper-triangular matrix; None for none."""
    if not pairs:
        return None
    pos, c = {w: i for i, w in enumerate(ids)}, np.zeros((len(ids), len(ids)))
    for a, b, cost in pairs:
        i, j = sorted((pos[str(a)], pos[str(b)]))
        if i == j:
            raise ValueError(f"pairs: {a!r} paired with itself")
        c[i, j] += float(cost)
    return c


def horizon_problem_to_dict(p: HorizonProblem) -> dict:
    """The JSON form of a problem (floats round-trip exactly)."""
    doc = shedding_problem_to_dict(p.base)
    doc.update(
        step_s=p.step_s,
        survival=[float(s) for s in p.survival],
        dwell=p.dwell,
        exit_levels=p.exit_levels.tolist(),
        exit_share=[float(q) for q in p.exit_share],
        max_changes=p.max_changes,
    )
    w, v, c = p.pairs
    if w.size:
        ids = p.base.workload_ids
        doc["pairs"] = [[ids[i], ids[j], float(x)] for i, j, x in zip(w.tolist(), v.tolist(), c.tolist())]
    for i, w in enumerate(doc["workloads"]):
        w.update(
            prev=int(p.prev[i]),
            down_cost=float(p.down_cost[i]),
            up_cost=float(p.up_cost[i]),
        )
    return doc
