"""Shedding: model semantics, solvers against brute force, the QUBO, the builder, the export."""

from __future__ import annotations

import io
import itertools
import json
import math

import dimod
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import policies.shedding as shedding_mod
from policies.errors import ConfigError
from policies.scenarios import Scenario
from policies.schema import DECISIONS_SHEDDING, DEPENDENCIES, SERVICES, WORKLOADS
from policies.shedding import (
    AnnealingSheddingSolver,
    CpSatSheddingSolver,
    GreedySheddingSolver,
    SheddingProblem,
    build_shedding_problems,
    build_shedding_qubo,
    decisions_table,
    is_feasible_shedding,
    policy_document,
    shedding_actions,
    shedding_objective,
    solve_shedding,
)
from policies.solvers import solve_portfolio
from policies.testing import assert_portfolio_consistent, assert_solver_conforms

FAMILY = dict(objective=shedding_objective, is_feasible=is_feasible_shedding)
SOLVERS = [GreedySheddingSolver(), CpSatSheddingSolver(), AnnealingSheddingSolver()]


# -- instances and an independent brute force ------------------------------------------------


def make_problem(seed: int, n: int = 6, *, flavour: str = "mixed", levels: int = 4) -> SheddingProblem:
    """Small random instance; flavours force relaxation, exact decimal fits, or plain data."""
    rng = np.random.default_rng(seed)
    v = rng.uniform(5, 50, n)
    r = np.where(rng.random(n) < 0.3, rng.uniform(0, 60, n), 0.0)  # some nets go negative
    d = np.round(rng.uniform(0.1, 5.0, n), 1)
    run = rng.random(n) > 0.15
    m = np.where(rng.random(n) < 0.4, rng.uniform(0, 0.7, n), 0.0)
    cap = float(rng.uniform(0.2, 0.8) * d.sum())
    if flavour == "relax":
        m = rng.uniform(0.5, 1.0, n)
        cap = float(rng.uniform(0.1, 0.4) * d.sum())
    elif flavour == "tight":  # capacity is exactly some admission's demand, in decimal
        k = rng.integers(0, levels + 1, n)
        cap = float(np.round(np.sum(k * d) / levels, 3))
        m[:] = 0.0
    ids = tuple(f"w{i}" for i in range(n))
    return SheddingProblem(f"s{seed}-{flavour}", ids, v, r, d, m, run, cap, levels)


def spec_lower_levels(p: SheddingProblem) -> np.ndarray:
    """The minimum levels as the model states them, written independently of the package."""
    L = p.levels
    m = np.where(p.runnable, p.min_share, 0.0)
    need = np.ceil(np.round(m * L, 9))
    if need @ p.demand / L <= p.capacity * (1 + 1e-12):
        return need
    f = p.capacity / (m @ p.demand)
    return np.minimum(need, np.floor(np.round(f * m * L, 9)))


_GRIDS: dict[tuple[int, int], np.ndarray] = {}


def brute_force(p: SheddingProblem) -> tuple[float, np.ndarray]:
    n, L = len(p.workload_ids), p.levels
    grid = _GRIDS.setdefault((n, L), np.array(list(itertools.product(range(L + 1), repeat=n))))
    ok = np.all(grid >= spec_lower_levels(p), axis=1) & np.all(grid[:, ~p.runnable] == 0, axis=1)
    ok &= grid @ p.demand / L <= p.capacity + 1e-9 * max(p.capacity, p.demand.sum())
    obj = grid @ (p.value_per_hour - p.risk_per_hour) / L
    i = int(np.argmax(np.where(ok, obj, -np.inf)))
    assert ok[i], "the model must always be feasible"
    return float(obj[i]), grid[i]


CASES = [(s, f, n) for s in range(10) for f, n in (("mixed", 7), ("relax", 6), ("tight", 6))]


@pytest.mark.parametrize(("seed", "flavour", "n"), CASES)
def test_solvers_against_brute_force(seed, flavour, n):
    p = make_problem(seed, n, flavour=flavour)
    opt, _ = brute_force(p)
    tol = 1e-7 * max(1.0, abs(opt))
    np.testing.assert_array_equal(p.bounds.lo, spec_lower_levels(p))
    results = {s.name: s.solve(p, seed=seed, time_limit_s=5.0) for s in SOLVERS}
    cp = results["cpsat"]
    assert cp.info.status == "OPTIMAL" and cp.feasible
    assert cp.objective == pytest.approx(opt, abs=tol)
    for res in results.values():
        assert res.feasible and is_feasible_shedding(p, res.solution)
        assert res.objective <= opt + tol
        if res.info.bound is not None:
            assert res.info.bound >= opt - tol
    # negative-net runnable workloads sit exactly at their minimum in the optimum
    neg = p.runnable & (p.value_per_hour < p.risk_per_hour)
    np.testing.assert_array_equal(cp.solution[neg], p.bounds.lo[neg])
    port = solve_portfolio(p, SOLVERS, seed=seed, time_limit_s=5.0, **FAMILY)
    assert port.best.objective == pytest.approx(opt, abs=tol)
    assert port.gap == 0.0
    assert_portfolio_consistent(port, p, **FAMILY)
    if flavour == "relax":
        assert p.bounds.relaxed and cp.info.extra["min_share_relaxed"]
        mass = np.where(p.runnable, p.min_share, 0) @ p.demand
        assert cp.info.extra["min_share_factor"] == pytest.approx(p.capacity / mass)


@pytest.mark.parametrize("solver", SOLVERS + [AnnealingSheddingSolver(sampler="dimod.RandomSampler")],
                         ids=lambda s: f"{s.name}-{getattr(s, 'sampler', '')}")
@pytest.mark.parametrize("flavour", ["mixed", "relax", "tight"])
def test_solvers_conform(solver, flavour):
    p = make_problem(3, 7, flavour=flavour)
    assert_solver_conforms(solver, p, seed=11, **FAMILY)


def test_solvers_conform_on_sixty_workloads():
    rng = np.random.default_rng(5)
    n = 60
    ids = tuple(f"w{i:02d}" for i in range(n))
    p = SheddingProblem("big", ids, rng.uniform(1, 90, n), rng.uniform(0, 40, n), rng.uniform(0.5, 9, n),
                        np.where(rng.random(n) < 0.3, 0.25, 0.0), rng.random(n) > 0.1, 120.0)
    for s in SOLVERS:
        res = assert_solver_conforms(s, p, seed=2, **FAMILY)
        assert res.feasible


def test_exact_decimal_fit_is_admitted():
    """0.1 + 0.1 + 0.1 + 0.1 = 0.4 only up to float rounding: every solver must still admit all."""
    p = SheddingProblem("dec", ("a", "b", "c", "d"), np.full(4, 10.0), np.zeros(4), np.full(4, 0.1),
                        np.zeros(4), np.ones(4, bool), 0.4)
    for s in SOLVERS:
        res = s.solve(p, seed=0, time_limit_s=5)
        np.testing.assert_array_equal(res.solution, [4, 4, 4, 4])


def test_min_share_relaxation_by_hand():
    # minimums 0.75 + 0.75 of demand 10 each need 15 > capacity 10: f = 10 / 15, levels floor(2/3 * 3) = 2
    p = SheddingProblem("relax", ("a", "b", "c"), np.array([5.0, 5.0, 1.0]), np.zeros(3), np.array([10.0, 10.0, 10.0]),
                        np.array([0.75, 0.75, 0.75]), np.array([True, True, False]), 10.0)
    b = p.bounds
    assert b.relaxed and b.factor == pytest.approx(2 / 3)
    np.testing.assert_array_equal(b.lo, [2, 2, 0])
    fits = SheddingProblem("fits", ("a", "b"), np.ones(2), np.zeros(2), np.array([10.0, 10.0]),
                           np.array([0.3, 0.5]), np.ones(2, bool), 10.0)
    assert not fits.bounds.relaxed
    np.testing.assert_array_equal(fits.bounds.lo, [2, 2])  # 0.3 rounds up to 2/4


def test_feasibility_rules():
    p = make_problem(1, 5)
    lo = p.bounds.lo
    assert is_feasible_shedding(p, lo)
    assert not is_feasible_shedding(p, np.full(5, p.levels + 1))
    assert not is_feasible_shedding(p, lo + 0.5)
    if p.runnable.all():
        return
    bad = lo.copy()
    bad[np.flatnonzero(~p.runnable)[0]] = 1
    assert not is_feasible_shedding(p, bad)
    with pytest.raises(ValueError):
        shedding_objective(p, np.zeros(4))


@pytest.mark.parametrize(
    ("change", "exc"),
    [
        ({"workload_ids": ("b", "a")}, ValueError),
        ({"workload_ids": ("a", "a")}, ValueError),
        ({"demand": np.array([-1.0, 1.0])}, ValueError),
        ({"min_share": np.array([0.0, 1.5])}, ValueError),
        ({"value_per_hour": np.array([np.nan, 1.0])}, ValueError),
        ({"runnable": np.array([1, 0])}, TypeError),
        ({"capacity": -1.0}, ValueError),
        ({"levels": 0}, ValueError),
        ({"demand": np.ones(3)}, ValueError),
    ],
)
def test_bad_problems_are_rejected(change, exc):
    base = dict(scenario_key="k", workload_ids=("a", "b"), value_per_hour=np.ones(2), risk_per_hour=np.zeros(2),
                demand=np.ones(2), min_share=np.zeros(2), runnable=np.ones(2, bool), capacity=1.0)
    with pytest.raises(exc):
        SheddingProblem(**{**base, **change})


# -- the QUBO --------------------------------------------------------------------------------


def _qubo_problem() -> SheddingProblem:
    ids = ("a", "b", "c", "d", "e")
    return SheddingProblem("q", ids, np.array([30.0, 20.0, 12.0, 9.0, -1.0]), np.array([0.0, 2.0, 0.0, 0.0, 0.0]),
                           np.array([4.0, 3.0, 2.0, 2.0, 1.0]), np.array([0.0, 0.25, 0.0, 0.5, 0.0]),
                           np.ones(5, bool), 6.0, levels=2)


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
    best = max(sum(c[w] * y for w, y in zip(q.index, ys_)) for ys_ in itertools.product(*box)
               if np.dot(ys_, q.weight) <= q.capacity_units)
    assert float(-np.min(energy)) == pytest.approx(best)


def test_anneal_sampler_is_configurable_by_import_path():
    with pytest.raises(ConfigError):
        AnnealingSheddingSolver(sampler="no.such.Sampler")
    with pytest.raises(ConfigError):
        AnnealingSheddingSolver(sampler="dimod.NoSuchSampler")
    s = AnnealingSheddingSolver(sampler="dimod.RandomSampler", num_reads=4)
    res = s.solve(make_problem(2, 6), seed=1, time_limit_s=1)
    assert res.feasible and res.info.params["sampler"] == "dimod.RandomSampler" and res.info.extra["reads"] == 4


# -- property: every portfolio best is feasible ----------------------------------------------

_shares = st.sampled_from([0.0, 0.0, 0.1, 0.25, 0.5, 0.8, 1.0])


@st.composite
def problems(draw):
    n = draw(st.integers(1, 6))
    fl = st.floats(0.0, 100.0, allow_nan=False)
    return SheddingProblem(
        "h", tuple(f"w{i}" for i in range(n)),
        np.array(draw(st.lists(fl, min_size=n, max_size=n))),
        np.array(draw(st.lists(fl, min_size=n, max_size=n))),
        np.array(draw(st.lists(st.floats(0.0, 10.0), min_size=n, max_size=n))),
        np.array(draw(st.lists(_shares, min_size=n, max_size=n))),
        np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n))),
        draw(st.floats(0.0, 40.0)), draw(st.integers(1, 4)),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems(), st.integers(0, 2**31 - 1))
def test_portfolio_best_is_always_feasible(p, seed):
    res = solve_portfolio(p, SOLVERS, seed=seed, time_limit_s=5.0, **FAMILY)
    assert_portfolio_consistent(res, p, **FAMILY)
    assert is_feasible_shedding(p, res.best.solution)
    assert all(c.feasible for c in res.candidates), [(c.info.solver, c.info.message) for c in res.candidates]


# -- builder ---------------------------------------------------------------------------------


def _tables():
    services = pa.Table.from_pylist([
        {"service_id": "r1", "kind": "region", "tier": 0, "capacity": 100.0, "region": None},
        {"service_id": "r2", "kind": "region", "tier": 0, "capacity": 50.0, "region": None},
        {"service_id": "pay", "kind": "saas", "tier": 0, "capacity": 0.0, "region": None},
        {"service_id": "svc-a", "kind": "internal", "tier": 1, "capacity": 7.0, "region": "r1"},
        {"service_id": "svc-b", "kind": "internal", "tier": 1, "capacity": 7.0, "region": "r1"},
        {"service_id": "svc-c", "kind": "internal", "tier": 2, "capacity": 7.0, "region": "r2"},
    ], schema=SERVICES)
    dependencies = pa.Table.from_pylist([
        {"service_id": "svc-a", "depends_on": "pay", "hard": True},
        {"service_id": "svc-b", "depends_on": "pay", "hard": False},
        {"service_id": "svc-c", "depends_on": "r2", "hard": True},
    ], schema=DEPENDENCIES)
    wl = [  # deliberately not in id order
        {"workload_id": "w4", "service_id": "svc-c", "value_per_hour": 40.0, "demand": 10.0, "requires": ["r2"],
         "risks": [{"depends_on": "pay", "cost_per_hour": 4.0}, {"depends_on": "r1", "cost_per_hour": 6.0}],
         "min_share": 0.0, "tier": 2},
        {"workload_id": "w1", "service_id": "svc-a", "value_per_hour": 100.0, "demand": 30.0, "requires": [],
         "risks": [], "min_share": 0.5, "tier": 0},
        {"workload_id": "w3", "service_id": "svc-b", "value_per_hour": 20.0, "demand": 20.0, "requires": [],
         "risks": [{"depends_on": "pay", "cost_per_hour": 10.0}], "min_share": 0.0, "tier": 1},
        {"workload_id": "w2", "service_id": "svc-b", "value_per_hour": 60.0, "demand": 40.0, "requires": ["pay"],
         "risks": [], "min_share": 0.25, "tier": 1},
    ]
    return services, dependencies, pa.Table.from_pylist(wl, schema=WORKLOADS)


def _scenario(key, down=(), degraded=(), eff=None, p=0.1):
    return Scenario(key, tuple(down), tuple(degraded), tuple(eff if eff is not None else down), p, 30.0, "single")


SCENARIOS = [
    _scenario("normal", p=0.7),
    _scenario("down=pay", ["pay"], eff=["pay", "svc-a"]),
    _scenario("down=r2", ["r2"]),  # effective_down left unclosed on purpose: the builder closes it
    _scenario("degraded=pay,r1", degraded=["pay", "r1"]),
]


def test_builder_by_hand():
    probs = build_shedding_problems(*_tables(), SCENARIOS)
    assert [p.key for p in probs] == [s.key for s in SCENARIOS]
    assert all(p.workload_ids == ("w1", "w2", "w3", "w4") for p in probs)
    normal, pay, r2, deg = probs
    np.testing.assert_array_equal(normal.demand, [30.0, 40.0, 20.0, 10.0])
    np.testing.assert_array_equal(normal.min_share, [0.5, 0.25, 0.0, 0.0])
    np.testing.assert_array_equal(normal.value_per_hour, [100.0, 60.0, 20.0, 40.0])
    assert [p.capacity for p in probs] == [150.0, 150.0, 100.0, 100.0]  # r1 degraded: 50 + 0.5 * 100
    np.testing.assert_array_equal(normal.runnable, [True, True, True, True])
    np.testing.assert_array_equal(pay.runnable, [False, False, True, True])  # svc-a down; w2 requires pay
    np.testing.assert_array_equal(r2.runnable, [True, True, True, False])  # svc-c and r2 down
    np.testing.assert_array_equal(deg.runnable, [True, True, True, True])
    np.testing.assert_array_equal(normal.risk_per_hour, [0, 0, 0, 0])
    np.testing.assert_array_equal(pay.risk_per_hour, [0, 0, 10.0, 4.0])
    np.testing.assert_array_equal(deg.risk_per_hour, [0, 0, 5.0, 0.5 * 4.0 + 0.5 * 6.0])
    custom = build_shedding_problems(*_tables(), SCENARIOS[3:], levels=2, degraded_capacity_share=0.0,
                                     degraded_risk_share=1.0)[0]
    assert custom.capacity == 50.0 and custom.levels == 2
    np.testing.assert_array_equal(custom.risk_per_hour, [0, 0, 10.0, 10.0])


def test_builder_rejects_duplicates_and_bad_shares():
    services, deps, wl = _tables()
    with pytest.raises(ValueError, match="workload_id"):
        build_shedding_problems(services, deps, pa.concat_tables([wl, wl]), SCENARIOS)
    with pytest.raises(ValueError, match="degraded_risk_share"):
        build_shedding_problems(services, deps, wl, SCENARIOS, degraded_risk_share=1.5)


# -- export and determinism ------------------------------------------------------------------


def test_actions_rank_admitted_then_shed_then_not_runnable():
    # densities: a 2.0, b 5.0, c 1.0, d 3.0 (not runnable), e 5.0 (tie with b, later id)
    p = SheddingProblem("r", ("a", "b", "c", "d", "e"), np.array([4.0, 10.0, 2.0, 6.0, 10.0]), np.zeros(5),
                        np.full(5, 2.0), np.zeros(5), np.array([True, True, True, False, True]), 4.0, levels=2)
    actions = shedding_actions(p, np.array([1, 2, 0, 0, 0]))
    assert [a["workload_id"] for a in actions] == ["b", "a", "e", "c", "d"]
    assert [a["rank"] for a in actions] == [1, 2, 3, 4, 5]
    assert [a["admit"] for a in actions] == [1.0, 0.5, 0.0, 0.0, 0.0]


def _solve_all(seed=3):
    probs = build_shedding_problems(*_tables(), SCENARIOS)
    calls = []
    results = solve_shedding(probs, seed=seed, time_limit_s=5.0, progress=lambda i, n: calls.append((i, n)))
    assert calls == [(i + 1, len(probs)) for i in range(len(probs))]
    return probs, results


def test_decisions_table_and_document_are_deterministic():
    outs = []
    for _ in range(2):
        probs, results = _solve_all()
        table = decisions_table(SCENARIOS, results, probs)
        buf = io.BytesIO()
        pq.write_table(table, buf)
        outs.append((buf.getvalue(), json.dumps(policy_document(SCENARIOS, results, probs), sort_keys=True)))
    assert outs[0] == outs[1]
    assert table.schema.equals(DECISIONS_SHEDDING)
    rows = table.to_pylist()
    assert len(rows) == len(SCENARIOS) * 4
    assert [r["scenario_key"] for r in rows] == [s.key for s in SCENARIOS for _ in range(4)]
    assert [r["rank"] for r in rows] == [1, 2, 3, 4] * len(SCENARIOS)
    pay_rows = [r for r in rows if r["scenario_key"] == "down=pay"]
    assert pay_rows[0]["effective_down"] == ["pay", "svc-a"]
    assert {r["workload_id"]: r["admit"] for r in pay_rows}["w2"] == 0.0


def test_policy_document_content():
    probs, results = _solve_all()
    doc = policy_document(SCENARIOS, results, probs)
    assert doc["schema_version"] == 1 and doc["policy"] == "shedding"
    first = doc["scenarios"][0]
    assert set(first) == {"key", "down", "degraded", "effective_down", "probability", "expected_duration_min",
                          "source", "solver", "objective", "bound", "gap", "status", "min_share_relaxed", "actions"}
    assert first["solver"] == "greedy" or first["status"] == "OPTIMAL"
    keys = {k for s in doc["scenarios"] for k in s} | {k for s in doc["scenarios"] for a in s["actions"] for k in a}
    assert not {k for k in keys if "time" in k or "version" in k or k.endswith("_s")}
    for s, r in zip(doc["scenarios"], results):
        assert s["objective"] == round(r.best.objective, 6)
        assert s["bound"] >= s["objective"] - 1e-6


def test_export_rejects_misaligned_inputs():
    probs, results = _solve_all()
    with pytest.raises(ValueError, match="misaligned"):
        decisions_table(SCENARIOS[::-1], results, probs)
    with pytest.raises(ValueError):
        policy_document(SCENARIOS[:2], results, probs)


def test_solve_shedding_seeds_follow_keys_and_unknown_solvers_fail():
    probs = build_shedding_problems(*_tables(), SCENARIOS)
    full = solve_shedding(probs, seed=9, time_limit_s=5.0)
    part = solve_shedding(probs[2:], seed=9, time_limit_s=5.0)  # an incident re-run of a subset
    for a, b in zip(full[2:], part):
        assert [c.info.seed for c in a.candidates] == [c.info.seed for c in b.candidates]
        np.testing.assert_array_equal(a.best.solution, b.best.solution)
    with pytest.raises(ConfigError, match="unknown shedding solver"):
        solve_shedding(probs, seed=1, time_limit_s=1.0, solvers=("greedy", "magic"))
    only = solve_shedding(probs, seed=1, time_limit_s=1.0, solvers=("anneal",), anneal_params={"num_reads": 2})
    assert all(r.chosen == "anneal" and r.candidates[0].info.params["num_reads"] == 2 for r in only)


def test_public_api_is_declared():
    for name in shedding_mod.__all__:
        assert hasattr(shedding_mod, name)
