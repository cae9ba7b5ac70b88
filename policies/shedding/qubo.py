"""The shedding problem as a QUBO, and the way back from samples to feasible levels.

Apart from the solvers because it is the one piece a hosted (quantum or cloud) sampler
would need: build the BQM here, sample it anywhere, and hand the sample set back to
:func:`repair_samples`. Variable labels are the workload ids in sorted order and dimod's
random slack labels are renamed, so the same problem always gives the same BQM.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import dimod
import numpy as np

from policies.shedding.problem import SheddingProblem, fill_levels, repair_levels, shedding_objective

__all__ = ["SheddingQubo", "build_shedding_qubo", "repair_samples"]

_SLACK = re.compile(r"^slack_v[0-9a-f]{32}_(\d+)$")


@dataclass(frozen=True, eq=False)
class SheddingQubo:
    """The CQM and its BQM penalty form; y_w = k_w - base_w for each CQM variable."""

    cqm: dimod.ConstrainedQuadraticModel
    bqm: dimod.BinaryQuadraticModel
    invert: Callable[[dict], dict]
    base: np.ndarray  # levels held fixed (minimums; zero-demand workloads at full share)
    index: tuple[int, ...]  # workload index of each CQM variable, in variable order
    weight: np.ndarray  # integer capacity units per level of each CQM variable
    capacity_units: int  # integer room above base
    lagrange: float


def build_shedding_qubo(problem: SheddingProblem, *, resolution: int = 32, penalty_factor: float = 0.5) -> SheddingQubo:
    """CQM over y_w = k_w - base_w (Integer, or Binary when y_w <= 1), then ``dimod.cqm_to_bqm``.

    Capacity is discretised into ``resolution`` units of the room above the minimums; level
    weights a_w are rounded up, so an integer-feasible y is float-feasible. The Lagrange
    multiplier is lambda = ``penalty_factor * rho`` with rho = max_w c_w / a_w, the most one
    capacity unit earns (c_w = (v_w - r_w) / L per level): a violation by u units costs
    lambda u^2 while those u units earn about rho u. lambda >= max_w c_w would make the
    ground state provably feasible, but larger factors gave worse samples in our runs
    (penalty barriers), and every sample is repaired anyway.
    """
    if resolution < 1 or penalty_factor <= 0:
        raise ValueError("resolution must be >= 1 and penalty_factor > 0")
    p, b = problem, problem.bounds
    step, c = p.demand / p.levels, p.net / p.levels
    base = b.lo.copy()
    base[(step <= 0) & (b.hi > b.lo)] = b.hi[(step <= 0) & (b.hi > b.lo)]  # free capacity: take it all
    room = max(p.capacity + p.tolerance / 2 - float(base @ step), 0.0)
    unit = room / resolution if room > 0 else 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(step > 0, np.clip(np.ceil(step / unit - 1e-9), 1, resolution + 1), 0).astype(np.int64)
        fits = np.where(weight > 0, resolution // np.maximum(weight, 1), 0)
    span = np.minimum(b.hi - base, fits) if room > 0 else np.zeros_like(base)
    index = tuple(int(w) for w in np.flatnonzero(span > 0))  # ids are sorted: variable order = id order
    objective = dimod.QuadraticModel()
    for w in index:
        if span[w] == 1:
            objective.add_variable("BINARY", p.workload_ids[w])
        else:
            objective.add_variable("INTEGER", p.workload_ids[w], lower_bound=0, upper_bound=int(span[w]))
        objective.set_linear(p.workload_ids[w], -float(c[w]))
    cqm = dimod.ConstrainedQuadraticModel()
    cqm.set_objective(objective)
    lam = 0.0
    if index and int(weight[list(index)] @ span[list(index)]) > resolution:
        cqm.add_constraint_from_iterable(
            [(p.workload_ids[w], int(weight[w])) for w in index], "<=", rhs=resolution, label="capacity"
        )
        lam = penalty_factor * float(max(c[w] / weight[w] for w in index))
    bqm, invert = dimod.cqm_to_bqm(cqm, lagrange_multiplier=lam)
    slack = {
        v: ("slack", "capacity", int(m.group(1)))
        for v in bqm.variables
        if isinstance(v, str) and (m := _SLACK.match(v))
    }
    bqm.relabel_variables(slack, inplace=True)  # dimod's slack labels are random uuids
    base.setflags(write=False)
    return SheddingQubo(cqm, bqm, invert, base, index, weight[list(index)], resolution if index else 0, lam)


def repair_samples(
    problem: SheddingProblem, qubo: SheddingQubo, sampleset: dimod.SampleSet, *, fill: bool = True
) -> tuple[np.ndarray, int]:
    """The best repaired levels over all reads, and how many raw reads already fitted.

    Raw samples often break the capacity (penalties are soft), so every read is inverted
    to levels, repaired (lowest-density admissions dropped until it fits) and, with
    ``fill``, topped up greedily; the best exact objective wins, the first read on ties.
    """
    labels = [problem.workload_ids[w] for w in qubo.index]
    idx = np.asarray(qubo.index)
    best, best_obj, raw_ok = None, -math.inf, 0
    for row in sampleset.record.sample:
        y = qubo.invert(dict(zip(sampleset.variables, row.tolist())))
        yv = np.array([y[v] for v in labels], dtype=np.int64)
        raw_ok += int(yv @ qubo.weight <= qubo.capacity_units)
        k = qubo.base.copy()
        k[idx] += yv
        k = repair_levels(problem, k)
        if fill:
            k = fill_levels(problem, k)
        obj = shedding_objective(problem, k)
        if obj > best_obj:
            best, best_obj = k, obj
    return best, raw_ok
