"""The published policy as a timed client replays it: the bundle's ``act_after_s`` and ``hold_s``.

A bundle whose shedding decisions carry the time rule (``qres_client.schema.DECISIONS_SHEDDING_TIMED``)
is meant to be applied by :class:`qres_client.controller.Controller`: wait ``act_after_s`` in a
state before shedding, hold ``hold_s`` after a switch before re-admitting. This policy replays
exactly that: one Controller per incident, fed the observed view window by window, its clock
the window's start (window ``-1``, the normal state, one window before the incident). When the
actions carry ``admit_max`` (the admission caps), the intended level is the cap in force and the
world's admission control serves it in rank order, as it does every policy's intent.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from policies.backtest.policies import Decision, PublishedPolicy
from policies.backtest.reuse import SOLVE_TOP_K
from policies.shedding.anticipation import HorizonParams, detection_delay_min, plan_over_time
from policies.shedding.horizon_solvers import HORIZON
from policies.shedding.policy import shedding_files
from qres_client.controller import Controller

if TYPE_CHECKING:
    from policies.backtest.replay import View

__all__ = ["TimedPublishedPolicy", "carries_timing", "published_policy", "trained_files"]


def trained_files(tables, cfg, model, scenarios, problems, results, solve=None) -> dict[str, bytes]:
    """The bundle files the nightly would publish for the trained policy, time-coupled plans included
    when ``cfg.time_coupled`` (``cfg``: the backtest's config, which names the nightly settings);
    ``solve`` as in ``run.train_policy``."""
    timing, delay_min = None, None
    if cfg.time_coupled:
        delay_min = detection_delay_min(model)
        params = HorizonParams(steps=cfg.horizon_steps, hold_s=cfg.hold_s)
        kw = {"seed": cfg.seed, "time_limit_s": cfg.time_limit_s, "solvers": cfg.horizon_solvers, "anneal": cfg.anneal}
        each = (
            partial(HORIZON.solve_each, **kw)
            if solve is None
            else partial(solve, "horizon", params={**kw, "top_k": SOLVE_TOP_K})
        )
        timing, _, _ = plan_over_time(model, scenarios, problems, results, tables["workloads"], params, each)
    return shedding_files(
        tables, scenarios, problems, results, levels=cfg.levels, timing=timing, hold_s=cfg.hold_s, delay_min=delay_min
    )


def published_policy(index, unmatched: str, *, window_min: int):
    """The timed replay when the bundle carries the time rule, else the stateless lookup."""
    if carries_timing(index):
        return TimedPublishedPolicy(index, unmatched, window_min=window_min)
    return PublishedPolicy(index, unmatched)


def carries_timing(index) -> bool:
    """Whether a loaded shedding index ships the time rule (the columns after the shedding ones)."""
    return {"act_after_s", "hold_s"} <= set(getattr(index, "extra_columns", ()))


class TimedPublishedPolicy:
    """``published``: the precomputed decisions through the client's Controller (module docstring)."""

    name = "published"
    adaptive = True

    def __init__(self, index, unmatched: str = "greedy", *, window_min: int = 1) -> None:
        self.index, self.unmatched, self.window_s = index, unmatched, 60.0 * window_min
        self.matched: dict[str, str] = {}  # observed key -> scenario that answered
        self.reset()

    def reset(self) -> None:
        self._ctl = Controller(self._decide)
        self._settled: tuple[View, Decision] | None = None  # the last answer, once nothing in it moves

    def _decide(self, down, degraded):
        down = frozenset(down)
        return self.index.decide(down, frozenset(degraded) - down, self.unmatched)

    def step(self, window: int, view: View) -> Decision:
        # Long outages repeat one observed state for hundreds of windows, and stepping the Controller
        # costs a pass over every workload of the plan. Once the Controller says its answer is final
        # (``Controller.settled``), a step on the same state would change nothing: answer as before.
        if self._settled is not None and self._settled[0] is view:
            return self._settled[1]
        decision = self._ctl.step(window * self.window_s, down=view.down, degraded=view.degraded)
        self.matched[view.key] = decision.scenario
        out = self._levels(view.problem, decision)
        self._settled = (view, out) if Controller.settled(decision) else None
        return out

    @staticmethod
    def _levels(p, decision) -> Decision:
        """The Controller's shares as intended levels and serving order on ``p``'s workloads."""
        pos = {w: i for i, w in enumerate(p.workload_ids)}
        k = np.zeros(len(pos), dtype=np.int64)
        ranked = []
        for a in decision.actions:
            if a.workload_id in pos:
                share = a.extras.get("admit_max", a.admit)
                k[pos[a.workload_id]] = int(round(float(share) * p.levels))
                ranked.append(pos[a.workload_id])
        seen = set(ranked)
        rest = [w for w in p.order.tolist() if w not in seen]
        return Decision(k, np.asarray(ranked + rest, dtype=np.int64))
