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

- **What fails with it.** Workloads whose risks escalate together in the scenarios that contain
  the state pay a correlated-risk term per pair (:mod:`policies.shedding.correlated`).

Every problem starts from the ``normal`` plan's levels and returns to it, allows one change per
workload (the client's ``act_after_s`` rule is then exact) and a dwell of ``hold_s``. The timed
plan of a solved problem (:func:`timed_plan`) is per workload its final level and when to switch.

**When a risk shed pays** (:func:`risk_shed_after_s`): the horizon ends at the 90% quantile, so
the solver does not see the tail of a long state and may ride out a risk shed that the tail
would pay for. A risk shed (a runnable workload whose risk exceeds its value) is therefore moved
to the first minute at which the history's expected remaining duration, given the time already
spent in the state, makes it pay its drain and warm-up; never later than the solver's time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import pyarrow as pa

from policies.model.failure_model import FailureModel
from policies.model.states import DEGRADED, DOWN, find_runs
from policies.scenarios.scenario_set import FALLBACK_KEY, NORMAL_KEY, Scenario, scenario_key
from policies.shedding.correlated import pair_costs
from policies.shedding.horizon import HorizonProblem
from policies.shedding.horizon_restrict import Restriction, full_solution, restrict
from policies.shedding.long_state import late_risk_sheds
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
    "mean_remaining_min",
    "risk_shed_after_s",
    "detection_delay_min",
]


@dataclass(frozen=True)
class HorizonParams:
    """The time-coupled solve's settings (``[solve]`` in qres.toml: ``horizon_*``, ``hold_s``)."""

    steps: int = 6
    hold_s: float = 300.0  # no re-admission this long after a workload's switch (the client's hold_s)
    min_step_s: float = 60.0
    min_episodes: int = 3
    risk_aversion: float = 1.0  # correlated-risk pairs (policies.shedding.correlated); 0 = none

    def __post_init__(self) -> None:
        if (
            self.steps < 1
            or self.hold_s < 0
            or self.min_step_s <= 0
            or self.min_episodes < 1
            or not self.risk_aversion >= 0
        ):
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
    then_levels: np.ndarray | None = None  # past the horizon: the long-run risk sheds (policies.shedding.long_state)
    then_after_s: np.ndarray | None = None


def detection_delay_min(model: FailureModel) -> float:
    """Minutes from a change of state to the checks reporting it: the hysteresis the model was fitted with."""
    return float((int(model.info.get("hysteresis_windows", 1)) - 1) * model.window_min)


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


def _state_episodes(model: FailureModel, s: Scenario) -> tuple[tuple[str, ...], int, np.ndarray, int]:
    """(the single service, its state, its completed episode lengths, escalations) of a one-service
    scenario; no episodes for several services at once."""
    single = s.down if len(s.down) == 1 and not s.degraded else s.degraded if not s.down else ()
    state = DOWN if s.down else DEGRADED
    durations, escalated = _episodes(model, single[0], state) if len(single) == 1 else (np.zeros(0), 0)
    return single, state, durations, escalated


def mean_remaining_min(
    durations_min: np.ndarray, mean_min: float, delay_min: float, elapsed_min: float, min_episodes: int
) -> float:
    """E[time left | the state was observed ``elapsed_min`` ago]: the history's episodes that lasted that
    long (0 when none did); with fewer than ``min_episodes`` episodes, exponential (memoryless)."""
    d = np.asarray(durations_min, dtype=np.float64)
    d = d[d > delay_min] - delay_min
    if d.size < min_episodes:
        return max(float(mean_min), 0.0)
    rest = d[d > elapsed_min] - elapsed_min
    return float(np.mean(rest)) if rest.size else 0.0


def risk_shed_after_s(p: HorizonProblem, levels, act_after_s, remaining_min: Callable[[float], float]) -> np.ndarray:
    """``act_after_s`` with every risk shed moved to the first whole minute at which the expected time left
    in the state (``remaining_min``) makes it pay: keeping the shed levels would lose
    remaining x (risk - value) / 60 / L per level, shedding costs the drain now and the warm-up when the
    state ends. Never later than the solver's time (which may see an escalation that pays sooner); kept
    when it never pays within the horizon. A capacity shed keeps the solver's time."""
    b, k = p.base, np.asarray(levels, dtype=np.int64)
    out = np.asarray(act_after_s, dtype=np.float64).copy()
    risky = np.flatnonzero((k < p.prev) & b.runnable & (b.net < 0))
    if risky.size == 0:
        return out
    horizon_min = int(math.ceil(p.steps * p.step_s / 60.0))
    left = np.array([remaining_min(float(t)) for t in range(horizon_min + 1)])
    for w in risky:
        pays = np.flatnonzero(left * (-b.net[w]) / 60.0 / b.levels >= p.down_cost[w] + p.up_cost[w])
        if pays.size:
            out[w] = min(out[w], 60.0 * float(pays[0]))
    return out


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
    delay_min = detection_delay_min(model)
    pairs = pair_costs(scenarios, problems, aversion=params.risk_aversion)
    out = []
    for s, p in zip(scenarios, problems, strict=True):
        if s.key in (NORMAL_KEY, FALLBACK_KEY):
            continue
        down_cost, up_cost = costs.per_level()
        single, state, durations, escalated = _state_episodes(model, s)
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
                pair_cost=pairs.get(s.key),
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
    by_key = {s.key: s for s in scenarios}
    delay_min = detection_delay_min(model)
    timing = {}
    for rp, r in zip(rs, hr, strict=True):
        p = rp.full
        plan = _full_plan(rp, r, params.hold_s)
        s = by_key[p.key]
        durations = _state_episodes(model, s)[2]
        remaining = partial(
            mean_remaining_min, durations, s.expected_duration_min, delay_min, min_episodes=params.min_episodes
        )
        after = risk_shed_after_s(p, plan.levels, plan.act_after_s, remaining)
        late = late_risk_sheds(p, static[p.key], plan.levels, after, remaining, _last_min(durations, delay_min, params))
        then = {} if late is None else {"then_levels": late[0], "then_after_s": late[1]}
        timing[p.key] = replace(plan, act_after_s=after, **then)
    return timing, [rp.problem for rp in rs], hr


def _last_min(durations_min: np.ndarray, delay_min: float, params: HorizonParams) -> int:
    """The last minute in the state that the history's episodes say anything about (0: memoryless)."""
    d = np.asarray(durations_min, dtype=np.float64)
    d = d[d > delay_min] - delay_min
    return int(math.floor(float(d.max()))) if d.size >= params.min_episodes else 0


def _full_plan(r: Restriction, result: PortfolioResult, hold_s: float) -> TimedPlan:
    """The timed plan over every workload; a restricted plan's values are the full problem's."""
    if r.problem is r.full:
        return timed_plan(r.full, result.best.solution, hold_s, result)
    x, chosen, value, live = full_solution(r, result.best.solution, result.chosen)
    return replace(timed_plan(r.full, x, hold_s, result), solver=chosen, objective=value, live_objective=live)
