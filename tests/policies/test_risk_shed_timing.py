"""When a risk shed pays: the expected time left in the state, from the history's episodes, by hand."""

from __future__ import annotations

from functools import partial

import numpy as np

from policies.shedding.anticipation import mean_remaining_min, risk_shed_after_s
from policies.shedding.horizon import HorizonProblem
from policies.shedding.problem import SheddingProblem


def _problem(risk: float, capacity: float = 10.0) -> HorizonProblem:
    # one workload, value 10/h; a risk of 40/h makes keeping it lose 30/h = 0.5 a minute
    base = SheddingProblem("degraded=x", ("w",), np.array([10.0]), np.array([risk]), np.array([5.0]),
                           np.zeros(1), np.ones(1, bool), capacity, 1)  # fmt: skip
    survival = np.array([1.0, 0.5, 0.2, 0.1, 0.05, 0.01])
    return HorizonProblem(base, 60.0, survival, np.array([1]), np.array([[1]]), np.array([1.0]), np.array([2.0]))


def _after(p, durations, solver_s, mean_min=0.0, delay_min=0.0):
    left = partial(mean_remaining_min, np.array(durations, dtype=float), mean_min, delay_min, min_episodes=3)
    return float(risk_shed_after_s(p, np.array([0]), np.array([solver_s]), left)[0])


def test_the_expected_time_left_is_the_history_of_episodes_that_lasted_that_long() -> None:
    d = np.array([2.0, 2.0, 3.0, 3.0, 12.0])
    assert mean_remaining_min(d, 0.0, 0.0, 0.0, 3) == 22.0 / 5
    assert mean_remaining_min(d, 0.0, 0.0, 2.0, 3) == (1 + 1 + 10) / 3  # 2-minute ones are over
    assert mean_remaining_min(d, 0.0, 0.0, 3.0, 3) == 9.0
    assert mean_remaining_min(d, 0.0, 1.0, 2.0, 3) == 9.0  # seen one minute late: episodes of 3+ minutes
    assert mean_remaining_min(d, 0.0, 0.0, 12.0, 3) == 0.0  # none lasted longer
    assert mean_remaining_min(d[:2], 7.0, 0.0, 5.0, 3) == 7.0  # too few episodes: memoryless


def test_a_risk_shed_acts_once_the_time_left_pays_its_switches() -> None:
    p = _problem(risk=40.0)  # pays when time left x 0.5 >= 1 + 2, i.e. 6 minutes left
    assert _after(p, [2, 3, 4, 30, 40], solver_s=120.0) == 0.0  # 15.8 minutes expected at once
    assert _after(p, [2, 2, 3, 3, 12], solver_s=300.0) == 180.0  # 4.4, 3.4, 4 then 9 after 3 minutes
    assert _after(p, [2, 2, 3, 3, 12], solver_s=60.0) == 60.0  # never later than the solver
    assert _after(p, [1, 1, 1, 2, 2], solver_s=240.0) == 240.0  # never pays: the solver's time stands
    assert _after(p, [1, 1], solver_s=240.0, mean_min=10.0) == 0.0  # memoryless, 10 minutes: at once


def test_a_capacity_shed_keeps_the_solvers_time() -> None:
    p = _problem(risk=0.0, capacity=1.0)
    assert _after(p, [2, 3, 4, 30, 40], solver_s=120.0) == 120.0
