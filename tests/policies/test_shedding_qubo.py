"""The shedding QUBO: energies equal the exact objective, and a strong penalty makes the ground state feasible."""

from __future__ import annotations

import itertools
import math

import dimod
import numpy as np
import pytest

from policies.shedding.problem import SheddingProblem, is_feasible_shedding, shedding_objective
from policies.shedding.qubo import build_shedding_qubo


def _qubo_problem() -> SheddingProblem:
    ids = ("a", "b", "c", "d", "e")
    return SheddingProblem(
        "q",
        ids,
        np.array([30.0, 20.0, 12.0, 9.0, -1.0]),
        np.array([0.0, 2.0, 0.0, 0.0, 0.0]),
        np.array([4.0, 3.0, 2.0, 2.0, 1.0]),
        np.array([0.0, 0.25, 0.0, 0.5, 0.0]),
        np.ones(5, bool),
        6.0,
        levels=2,
    )


def _enumerate(q):
    ss = dimod.ExactSolver().sample(q.bqm)
    labels = list(q.cqm.variables)
    ys = np.array([[q.invert(dict(zip(ss.variables, row)))[v] for v in labels] for row in ss.record.sample])
    return ys, ss.record.energy, labels


def test_qubo_energy_matches_exact_objective():
    p = _qubo_problem()
    q = build_shedding_qubo(p, resolution=8)
    assert list(q.cqm.variables) == [p.workload_ids[w] for w in q.index] == sorted(q.cqm.variables)
    ys, energy, _ = _enumerate(q)
    base = shedding_objective(p, q.base)
    by_y: dict[tuple, float] = {}
    for y, e in zip(map(tuple, ys), energy):
        by_y[y] = min(by_y.get(y, math.inf), float(e))
    assert by_y, "no samples"
    for y, e in by_y.items():
        k = q.base.copy()
        k[list(q.index)] += np.array(y, dtype=np.int64)
        cqm_energy = base - shedding_objective(p, k)  # the CQM objective is minus the gain over base
        assert q.cqm.objective.energy(dict(zip(q.cqm.variables, y))) == pytest.approx(cqm_energy)
        if np.dot(y, q.weight) <= q.capacity_units:  # integer-feasible: slack absorbs the rest
            assert e == pytest.approx(cqm_energy, abs=1e-6)
            assert is_feasible_shedding(p, k)  # weights round up: integer-feasible is feasible
        else:
            assert e > cqm_energy + 1e-9


def test_qubo_ground_state_is_the_integer_optimum_with_a_strong_penalty():
    p = _qubo_problem()
    q = build_shedding_qubo(p, resolution=8, penalty_factor=50.0)
    c = p.net / p.levels
    assert q.lagrange >= max(c[w] for w in q.index)  # strong enough to make infeasibility never pay
    ys, energy, _ = _enumerate(q)
    ground = ys[int(np.argmin(energy))]
    assert ground @ q.weight <= q.capacity_units
    box = [range(int(p.bounds.hi[w] - q.base[w]) + 1) for w in q.index]
    best = max(
        sum(c[w] * y for w, y in zip(q.index, ys_))
        for ys_ in itertools.product(*box)
        if np.dot(ys_, q.weight) <= q.capacity_units
    )
    assert float(-np.min(energy)) == pytest.approx(best)
