r"""The time-coupled shedding problem as a QUBO, and the way back from samples to feasible plans.

Levels are thermometer-coded: workload w at step t holds k = lo_w + sum_j b_{w,j,t} with bits
b_1 >= b_2 >= ... (an ordering penalty P (b_{j+1} - b_j b_{j+1}) is 0 exactly on ordered bits).
On ordered bits |k_t - k_{t-1}| is the Hamming distance of the two codes, so switching is exactly
quadratic: per bit, up S_t (b_t - b_t b_{t-1}) + down S_t (b_{t-1} - b_t b_{t-1}); switching
from ``prev`` and to ``exit`` is linear; a correlated-risk pair's k_w k_v is a product of two sums
of bits, quadratic on any bits. So ``objective`` (a BQM) has energy == -objective on
every ordered point: no approximation in the part the sampler optimises.

Capacity per step is discretised into ``resolution`` units of the room above the minimums
(weights rounded up, so an integer-feasible point is float-feasible) and added with dimod's
unbalanced penalty (``penalization_method="unbalanced"``: lambda0 g + lambda1 g^2 of the
excess g, no slack bits), lambda0 = alpha rho_t, lambda1 = beta rho_t / resolution, rho_t the
most one unit earns in step t. The dwell (a 4th-order condition) is not encoded: every read is
repaired step by step (changes inside the dwell or past ``max_changes`` undone, then the lowest-density admissions that
may change dropped until the step fits), which always succeeds since holding fits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import dimod
import numpy as np

from policies.shedding.horizon import HorizonProblem, horizon_objective, is_feasible_horizon

__all__ = ["HorizonQubo", "build_horizon_qubo", "decode_levels", "repair_horizon", "repair_horizon_samples"]


@dataclass(frozen=True, eq=False)
class HorizonQubo:
    objective: dimod.BinaryQuadraticModel  # energy == -horizon_objective on ordered bits
    bqm: dimod.BinaryQuadraticModel  # objective + ordering + capacity penalties: what is sampled
    bits: tuple[tuple[int, int, int], ...]  # (step, workload, bit) of each variable label 0..N-1
    fixed: np.ndarray  # levels of workloads held at lo (no bits)
    weight: np.ndarray  # capacity units per level, per workload
    units: int  # capacity units of room above the minimums


def _bit_costs(p: HorizonProblem, target: np.ndarray, w: int, span: int, entering: bool):
    """Per-bit linear costs and the constant of switching between the coded level and ``target``.

    ``entering``: from target to the code (prev -> k); else from the code to target (k -> exit).
    """
    lo, hi, up, dn = int(p.lo[w]), int(p.hi[w]), p.up_cost[w], p.down_cost[w]
    on = np.array([lo + j <= target[w] for j in range(1, span + 1)])
    raise_cost, lower_cost = (up, dn) if entering else (dn, up)  # code above target: raise or lower
    lin = np.where(on, -lower_cost, raise_cost)  # on bits: lowering costs when the bit is 0
    const = float(np.sum(on) * lower_cost)
    const += (up if entering else dn) * max(lo - int(target[w]), 0) + (dn if entering else up) * max(
        int(target[w]) - hi, 0
    )
    return lin, const


def build_horizon_qubo(
    p: HorizonProblem, *, resolution: int = 32, penalty: tuple[float, float] = (0.5, 0.5), order_weight=None
) -> HorizonQubo:
    if resolution < 1 or min(penalty) <= 0:
        raise ValueError("resolution must be >= 1 and both penalty factors > 0")
    b, T, n = p.base, p.steps, len(p.base.workload_ids)
    step = b.demand / b.levels
    room = b.capacity + b.tolerance / 2 - float(p.lo @ step)
    span = (p.hi - p.lo).astype(np.int64)
    if room <= 0:
        span = np.where(step > 0, 0, span)
    unit = room / resolution if room > 0 else 1.0
    weight = np.where(step > 0, np.ceil(step / unit - 1e-9), 0).astype(np.int64)
    bits = tuple((t, w, j) for t in range(T) for w in range(n) for j in range(int(span[w])))
    label = {key: i for i, key in enumerate(bits)}
    obj = dimod.BinaryQuadraticModel("BINARY")
    obj.add_variables_from((i, 0.0) for i in range(len(bits)))
    vpl, S, E = p.value_per_level, p.survival, p.leave
    const = float(np.sum(vpl * p.lo))  # value of the minimums
    for w in range(n):
        m = int(span[w])
        fixed = m == 0
        lin0, c0 = _bit_costs(p, p.prev, w, m, entering=True)
        const -= c0 * S[0] if not fixed else 0.0
        if fixed:  # held at lo every step: constant switching in and out
            lo = int(p.lo[w])
            d_in = lo - int(p.prev[w])
            const -= S[0] * (p.up_cost[w] * max(d_in, 0) + p.down_cost[w] * max(-d_in, 0))
            for q, e in zip(p.exit_share, p.exit_levels):
                d_out = int(e[w]) - lo
                const -= q * float(E.sum()) * (p.up_cost[w] * max(d_out, 0) + p.down_cost[w] * max(-d_out, 0))
            continue
        linx, cx = np.zeros(m), 0.0
        for q, e in zip(p.exit_share, p.exit_levels):
            lin_e, c_e = _bit_costs(p, e, w, m, entering=False)
            linx, cx = linx + q * lin_e, cx + q * c_e
        for t in range(T):
            const -= E[t] * cx
            for j in range(m):
                v = label[(t, w, j)]
                obj.add_linear(v, -float(vpl[t, w]) + E[t] * float(linx[j]) + (S[0] * float(lin0[j]) if t == 0 else 0))
                if t > 0:
                    u = label[(t - 1, w, j)]
                    obj.add_linear(v, S[t] * p.up_cost[w])
                    obj.add_linear(u, S[t] * p.down_cost[w])
                    obj.add_quadratic(u, v, -S[t] * (p.up_cost[w] + p.down_cost[w]))
    pw, pv, _ = p.pairs
    for t in range(T):
        for i, (w, v) in enumerate(zip(pw.tolist(), pv.tolist())):
            a = float(p.pair_per_level[t, i])  # energy + a k_w k_v, k = lo + the bits: exactly quadratic
            lo_w, lo_v = int(p.lo[w]), int(p.lo[v])
            const -= a * lo_w * lo_v
            bw = [label[(t, w, j)] for j in range(int(span[w]))]
            bv = [label[(t, v, j)] for j in range(int(span[v]))]
            for x in bw:
                obj.add_linear(x, a * lo_v)
            for y in bv:
                obj.add_linear(y, a * lo_w)
            obj.add_quadratic_from((x, y, a) for x in bw for y in bv)
    obj.offset = -const
    bqm = obj.copy()
    scale = max(float(np.max(np.abs(vpl))), float(np.max(p.up_cost, initial=0)), float(np.max(p.down_cost, initial=0)))
    order_p = float(order_weight) if order_weight is not None else 2.0 * max(scale, 1e-12) * b.levels
    for t, w, j in bits:
        if j > 0:
            u, v = label[(t, w, j - 1)], label[(t, w, j)]
            bqm.add_linear(v, order_p)
            bqm.add_quadratic(u, v, -order_p)
    if room > 0:
        for t in range(T):
            terms = [(label[(t, w, j)], int(weight[w])) for w in range(n) for j in range(int(span[w])) if weight[w]]
            if sum(c for _, c in terms) <= resolution:
                continue  # never binds at this step
            rho = max(float(vpl[t, w]) / weight[w] for w in range(n) if weight[w] and span[w])
            rho = max(rho, 1e-12)
            lam = (penalty[0] * rho, penalty[1] * rho / resolution)
            bqm.add_linear_inequality_constraint(
                terms, lagrange_multiplier=lam, label=f"cap{t}", ub=resolution, penalization_method="unbalanced"
            )
    return HorizonQubo(obj, bqm, bits, p.lo.copy(), weight, resolution if room > 0 else 0)


def decode_levels(p: HorizonProblem, q: HorizonQubo, sample: np.ndarray) -> np.ndarray:
    """Flat levels from one sample (bits counted per workload and step, order ignored)."""
    k = np.tile(p.lo, (p.steps, 1)).astype(np.int64)
    idx = np.asarray(q.bits, dtype=np.int64).reshape(-1, 3)
    if idx.size:
        np.add.at(k, (idx[:, 0], idx[:, 1]), np.asarray(sample, dtype=np.int64))
    return k.reshape(-1)


def repair_horizon(p: HorizonProblem, x: np.ndarray, *, fill: bool = True) -> np.ndarray:
    """Step by step: undo changes inside the dwell, drop the lowest-density changeable levels until the
    step fits, then (``fill``) raise changeable positive-net levels by density while they fit and earn more than their
    correlated pairs cost."""
    b, n = p.base, len(p.base.workload_ids)
    k = np.clip(np.asarray(x, dtype=np.int64).reshape(p.steps, n), p.lo, p.hi)
    step = b.demand / b.levels
    limit = b.capacity + b.tolerance / 2
    cur, last, used = p.prev.copy(), np.full(n, -(10**9)), np.zeros(n, dtype=np.int64)
    cap = p.steps if p.max_changes is None else p.max_changes
    pw, pv, _ = p.pairs
    pair = np.zeros((p.steps, n, n))  # [t, w, v]: a level of w with a level of v costs this in step t
    if pw.size:
        np.add.at(pair, (slice(None), pw, pv), p.pair_per_level)
        np.add.at(pair, (slice(None), pv, pw), p.pair_per_level)
    for t in range(p.steps):
        row = k[t]
        frozen = (t - last < p.dwell) | (used >= cap)
        locked = (row != cur) & frozen
        row[locked] = cur[locked]
        over = float(row @ step) - limit
        for w in b.order[::-1]:
            if over <= 0:
                break
            if row[w] > p.lo[w] and step[w] > 0 and (row[w] != cur[w] or not frozen[w]):
                drop = min(int(row[w] - p.lo[w]), math.ceil(over / step[w] - 1e-12))
                row[w] -= drop
                over -= drop * step[w]
        if fill:
            room = limit - float(row @ step)
            for w in b.order:
                if b.net[w] <= 0 or row[w] >= p.hi[w] or (row[w] == cur[w] and frozen[w]):
                    continue
                if pw.size and p.value_per_level[t, w] <= float(pair[t, w] @ row):
                    continue  # a level more costs its correlated pairs at least what it earns
                add = int(p.hi[w] - row[w]) if step[w] <= 0 else min(int(p.hi[w] - row[w]), int(room // step[w]))
                if add > 0:
                    row[w] += add
                    room -= add * step[w]
        moved = row != cur
        last[moved], cur = t, row.copy()
        used += moved
    return k.reshape(-1)


def repair_horizon_samples(p: HorizonProblem, q: HorizonQubo, sampleset: dimod.SampleSet) -> tuple[np.ndarray, int]:
    """The best repaired plan over all reads (first on ties) and how many raw reads were feasible."""
    order = np.argsort(np.asarray(list(sampleset.variables), dtype=np.int64))
    best, best_obj, raw_ok = None, -math.inf, 0
    for row in sampleset.record.sample:
        x = decode_levels(p, q, row[order])
        raw_ok += int(is_feasible_horizon(p, x))
        x = repair_horizon(p, x)
        obj = horizon_objective(p, x)
        if obj > best_obj:
            best, best_obj = x, obj
    return best, raw_ok
