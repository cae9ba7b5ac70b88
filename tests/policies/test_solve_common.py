"""What every family's solvers share: the CP-SAT set-up and outcome, the sampler and its arguments."""

from __future__ import annotations

from types import SimpleNamespace

import dimod
import pytest
from ortools.sat.python import cp_model

from policies.errors import ConfigError, SolverError
from policies.solve.anneal import AnnealParams, load_sampler, sample_kwargs
from policies.solve.cpsat import UNITS_PER_S, cpsat_solver, run_cpsat, stop_reason


@pytest.mark.parametrize(
    ("status", "units", "expected"),
    [
        (cp_model.OPTIMAL, 0.3, None),
        (cp_model.INFEASIBLE, 0.3, None),
        (cp_model.FEASIBLE, 1.0, "deterministic"),
        (cp_model.FEASIBLE, 0.4, "wall_clock"),
        (cp_model.UNKNOWN, 0.4, "wall_clock"),
    ],
)
def test_stop_reason_names_the_limit_that_ended_the_search(status, units, expected) -> None:
    assert stop_reason(SimpleNamespace(deterministic_time=units), status, 1.0) == expected


def test_cpsat_solver_limits_and_parameters() -> None:
    solver, params = cpsat_solver(seed=2**31 + 5, time_limit_s=2.0)
    assert solver.parameters.num_workers == 1 and solver.parameters.random_seed == 5
    assert params == {"num_workers": 1, "max_deterministic_time": UNITS_PER_S * 2.0, "max_time_in_seconds": 6.0}
    assert "cp_model_presolve" not in params
    solver, params = cpsat_solver(seed=1, time_limit_s=1.0, deterministic_time=2.0, wall_time_factor=4, presolve=False)
    assert params["max_time_in_seconds"] == 4 * 2.0 / UNITS_PER_S  # the net follows a larger budget
    assert params["cp_model_presolve"] is False and not solver.parameters.cp_model_presolve


def test_run_cpsat_names_the_outcome() -> None:
    m = cp_model.CpModel()
    x = m.new_int_var(0, 3, "x")
    m.maximize(x)
    solver, _ = cpsat_solver(seed=0, time_limit_s=1.0)
    out = run_cpsat(solver, m, what="toy")
    assert (out.status, out.cp_status, out.stopped_by) == ("OPTIMAL", "OPTIMAL", None) and solver.value(x) == 3
    m.add(x >= 5)
    with pytest.raises(SolverError, match="INFEASIBLE for toy"):
        run_cpsat(cpsat_solver(seed=0, time_limit_s=1.0)[0], m, what="toy")
    out = run_cpsat(cpsat_solver(seed=0, time_limit_s=1.0)[0], m, what="toy", allow_infeasible=True)
    assert out.status == "INFEASIBLE"


def test_sampler_by_import_path_and_its_arguments() -> None:
    sampler = load_sampler("dimod.RandomSampler")
    assert isinstance(sampler, dimod.RandomSampler)
    kw = sample_kwargs(sampler, seed=2**31 + 3, num_reads=4, num_sweeps=10)
    assert kw == {"num_reads": 4, "seed": 3}  # RandomSampler takes no num_sweeps
    assert sample_kwargs(sampler, seed=1, given={"seed": 9, "num_reads": 2}, num_reads=4) == {"seed": 9, "num_reads": 2}
    exact = load_sampler("dimod.ExactSolver")
    assert "seed" not in sample_kwargs(exact, seed=1, num_reads=4)  # cannot be seeded: not repeatable
    with pytest.raises(ConfigError, match="cannot load sampler"):
        load_sampler("dimod.NoSuchSampler")
    with pytest.raises(ConfigError, match="cannot load sampler"):
        load_sampler("dimod.RandomSampler", {"bogus": 1})


def test_anneal_params_are_the_solvers_arguments() -> None:
    p = AnnealParams(num_reads=3, num_sweeps=50)
    assert p.as_dict() == {"sampler": "dwave.samplers.SimulatedAnnealingSampler", "num_reads": 3, "num_sweeps": 50}
    with pytest.raises(ConfigError):
        AnnealParams(num_reads=0)
