"""From the fitted failure model to one time-coupled problem per observed state, and back to a timed plan.

What only the pipeline knows, per scenario (an observed state):

- **How long it lasts, given that it has just been observed.** The durations of the state's
  episodes in the history (a single down service: its down episodes; a single degraded one: its
  degraded episodes), conditioned on having lasted the observation delay the hysteresis implies
  (``(k - 1) * window_min``): S_t = P(D > delay + t step) / P(D > delay). With fewer than
  ``min_episodes`` completed episodes (or several services at once) D is exponential with the
  scenario's expected duration. The horizon is the 90% quantile of the remaining duration, cut
  in ``steps`` steps of whole minutes (at least ``min_step_s``).
- **What it becomes.** A degraded precursor ends either in recovery or in the down state of the
  same service: ``p_escalate`` = (episodes of degraded directly followed by down + 0.5) /
  (completed degraded episodes + 1). The state's plan then hands over to the down scenario's
  plan with that share (exit plans of :class:`~policies.shedding.horizon.HorizonProblem`), so
  acting on a precursor is worth what it saves at the switch, and a false alarm costs both ways.

Every problem starts from the ``normal`` plan's levels and returns to it, allows one change per
workload (the client's ``act_after_s`` rule is then exact) and a dwell of ``hold_s``. The timed
plan of a solved problem (:func:`timed_plan`) is per workload its final level and when to switch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa

from policies.model.failure_model import FailureModel
from policies.model.states import DEGRADED, DOWN, find_runs
from policies.scenarios.scenario_set import FALLBACK_KEY, NORMAL_KEY, Scenario, scenario_key
from policies.shedding.horizon import HorizonProblem
from policies.shedding.horizon_restrict import Restriction, full_solution, restrict
from policies.shedding.problem import SheddingProblem
from policies.solve.portfolio import PortfolioResult
from policies.switching import switch_costs

__all__ = [
    "HorizonParams",
    "TimedPlan",
    "build_horizon_problems",
    "timed_plan",
    "remaining_survival",
    "plan_over_time",
]


@dataclass(frozen=True)
class HorizonParams:
    """The time-coupled solve's settings (``[solve]`` in qres.toml: ``horizon_*``, ``hold_s``)."""

    steps: int = 6
    hold_s: float = 300.0  # no re-admission this long after a workload's switch (the client's hold_s)
    min_step_s: float = 60.0
    min_episodes: int = 3

    def __post_init__(self) -> None:
        if self.steps < 1 or self.hold_s < 0 or self.min_step_s <= 0 or self.min_episodes < 1:
            raise ValueError(f"bad horizon parameters {self!r}")


@dataclass(frozen=True)
class TimedPlan:
    """Per workload (sorted ids): the level to hold and the seconds to wait in the state before switching."""

    levels: np.ndarray
    act_after_s: np.ndarray
    hold_s: float
    step_s: float = 0.0
    solver: str = ""  # the horizon portfolio's choice
    objective: float | None = None  # its value over the horizon
    live_objective: float | None = None  # the live rule's (greedy) value over the same horizon


def _episodes(model: FailureModel, service: str, state: int) -> tuple[np.ndarray, int]:
    """Completed episode lengths (minutes) of ``service`` in ``state``, and how many went on to DOWN."""
    if service not in model.services:
        return np.zeros(0), 0
    j = model.services.index(service)
    column = model.states[:, j : j + 1]
    _, first, length = find_runs(column, state)
    n_w = column.shape[0]
    done = (first > 0) & (first + length < n_w)
    after = first[done] + length[done]
    escalated = int(np.sum(column[after, 0] == DOWN)) if state == DEGRADED else 0
    return length[done].astype(np.float64) * model.window_min, escalated


def remaining_survival(
    durations_min: np.ndarray, mean_min: float, delay_min: float, steps: int, min_step_s: float, min_episodes: int
) -> tuple[np.ndarray, float]:
    """(S_t at the start of each step, step_s): the state's remaining duration after ``delay_min``."""
    d = np.asarray(durations_min, dtype=np.float64)
    d = d[d > delay_min] - delay_min
    if d.size >= min_episodes:
        q90_min = float(np.quantile(d, 0.9))
    else:
        mean = max(float(mean_min), 1e-6)
        q90_min = mean * math.log(10.0)
    step_s = max(float(min_step_s), math.ceil(q90_min * 60.0 / steps / 60.0) * 60.0)
    t_min = np.arange(steps) * step_s / 60.0
    if d.size >= min_episodes:
        s = np.array([float(np.mean(d > t)) if t > 0 else 1.0 for t in t_min])
    else:
        s = np.exp(-t_min / max(float(mean_min), 1e-6))
    return np.minimum.accumulate(np.clip(s, 0.0, 1.0)), step_s


def build_horizon_problems(
    model: FailureModel,
    scenarios: Sequence[Scenario],
    problems: Sequence[SheddingProblem],
    static_levels: Mapping[str, np.ndarray],
    workloads: pa.Table,
    params: HorizonParams = HorizonParams(),
) -> list[HorizonProblem]:
    """One problem per scenario except ``normal``, the fallback, and states whose static optimum is the
    normal plan with recovery as the only way out (holding the normal plan is then optimal over time too).

    ``static_levels``: each scenario's solved static levels by key (``normal`` must be there).
    """
    normal = np.asarray(static_levels[NORMAL_KEY], dtype=np.int64)
    ids = problems[0].workload_ids if problems else ()
    costs = switch_costs(workloads, levels=problems[0].levels) if problems else None
    if costs is not None and costs.workload_ids != tuple(ids):
        raise ValueError("workloads: the switching costs and the problems name different workloads")
    delay_min = (int(model.info.get("hysteresis_windows", 1)) - 1) * model.window_min
    out = []
    for s, p in zip(scenarios, problems, strict=True):
        if s.key in (NORMAL_KEY, FALLBACK_KEY):
            continue
        down_cost, up_cost = costs.per_level()
        single = s.down if len(s.down) == 1 and not s.degraded else s.degraded if not s.down else ()
        state = DOWN if s.down else DEGRADED
        durations, escalated = _episodes(model, single[0], state) if len(single) == 1 else (np.zeros(0), 0)
        survival, step_s = remaining_survival(
            durations, s.expected_duration_min, delay_min, params.steps, params.min_step_s, params.min_episodes
        )
        exits, shares = [normal], [1.0]
        target = scenario_key(single) if state == DEGRADED and len(single) == 1 else None
        if target in static_levels:
            p_esc = (escalated + 0.5) / (durations.size + 1.0)
            exits, shares = [normal, np.asarray(static_levels[target])], [1.0 - p_esc, p_esc]
        if len(exits) == 1 and np.array_equal(static_levels[s.key], normal):
            continue  # the normal plan is this state's optimum too: nothing to switch, nothing to wait for
        out.append(
            HorizonProblem(
                base=p,
                step_s=step_s,
                survival=survival,
                prev=normal,
                exit_levels=np.vstack(exits),
                down_cost=down_cost,
                up_cost=up_cost,
                dwell=max(1, math.ceil(params.hold_s / step_s - 1e-9)),
                exit_share=np.array(shares),
                max_changes=1,
            )
        )
    return out


def timed_plan(problem: HorizonProblem, solution, hold_s: float, result: PortfolioResult | None = None) -> TimedPlan:
    """The client's rule from a one-change solution: the final levels and, per workload, when it switches."""
    k = np.asarray(solution, dtype=np.int64).reshape(problem.steps, -1)
    changed = k != np.vstack([problem.prev[None, :], k[:-1]])
    first = np.where(changed.any(axis=0), changed.argmax(axis=0), 0)
    live = [c.objective for c in result.candidates if c.info.solver == "greedy" and c.feasible] if result else []
    return TimedPlan(
        levels=k[-1].copy(),
        act_after_s=first * problem.step_s,
        hold_s=float(hold_s),
        step_s=problem.step_s,
        solver=result.chosen if result else "",
        objective=result.best.objective if result else None,
        live_objective=live[0] if live else None,
    )


def plan_over_time(
    model: FailureModel,
    scenarios: Sequence[Scenario],
    problems: Sequence[SheddingProblem],
    results: Sequence[PortfolioResult],
    workloads: pa.Table,
    params: HorizonParams,
    solve: Callable[[list[HorizonProblem]], list[PortfolioResult]],
) -> tuple[dict[str, TimedPlan], list[HorizonProblem], list[PortfolioResult]]:
    """The timed plan of every scenario that has one, from the static results; ``solve`` is the caller's
    way to run ``HORIZON.solve_each`` (the nightly caches and chunks it, the backtest calls it)."""
    static = {s.key: np.asarray(r.best.solution) for s, r in zip(scenarios, results, strict=True)}
    hp = build_horizon_problems(model, scenarios, problems, static, workloads, params)
    rs = [restrict(p, static[p.key]) for p in hp]  # each state over the workloads it can change
    hr = solve([r.problem for r in rs])
    plans = {r.full.key: _full_plan(r, res, params.hold_s) for r, res in zip(rs, hr, strict=True)}
    return plans, [r.problem for r in rs], hr


def _full_plan(r: Restriction, result: PortfolioResult, hold_s: float) -> TimedPlan:
    """The timed plan over every workload; a restricted plan's values are the full problem's."""
    if r.problem is r.full:
        return timed_plan(r.full, result.best.solution, hold_s, result)
    x, chosen, value, live = full_solution(r, result.best.solution, result.chosen)
    return replace(timed_plan(r.full, x, hold_s, result), solver=chosen, objective=value, live_objective=live)
