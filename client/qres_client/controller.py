"""Applying a shedding plan over time: wait before switching when the plan says so, hold after a switch.

``decide()`` is stateless: it says which plan fits the observed state now. A bundle whose
decisions carry the time rule (``act_after_s``, ``hold_s``; ``qres_client.schema.DECISIONS_SHEDDING_TIMED``)
was planned over each state's expected duration with switching costs, so the plan's levels are
only worth their switching cost when the rule is followed. :class:`Controller` follows it::

    ctl = Controller(client.decide)
    decision = ctl.step(time.monotonic(), down=observed_down, degraded=observed_degraded)

Rules, per workload, with ``elapsed`` the time since the observed state's plan (its scenario)
was first answered:

- **First sight** of a workload: its planned share at once (there is nothing to switch from).
- **Lower share** (shed): switch once ``elapsed >= act_after_s``. A short state is ridden out at
  the current share; a plan whose capacity needs the cut says 0. Never delayed by a hold.
- **Higher share** (re-admit): switch once ``elapsed >= act_after_s`` *and* the hold of the
  workload's last switch has passed (``hold_s`` of the plan that switched it), so a flapping
  dependency does not make the service drain and warm up again and again.

A bundle that also ships ``then_after_s`` and ``then_admit`` (``DECISIONS_SHEDDING_LATE``) has a second
step per workload: once the state has lasted ``then_after_s``, its share and cap are at most
``then_admit`` (a state that outlived the horizon its plan was solved for gets its long-run risk sheds).

A bundle that also ships ``admit_max`` (the share admission control may run when capacity is
there, ``DECISIONS_SHEDDING_ADMISSION``) has its caps follow the same two rules, each workload
with its own hold; ``extras["admit_max"]`` is then the cap in force and ``extras["target_max"]``
the plan's. Decisions without the columns (older bundles, the runtime greedy, the fallback)
switch at once with no hold: the stateless behaviour. The returned :class:`Decision` is the plan with each
action's ``admit`` the share to apply now; ``extras["target"]`` keeps the plan's share.
Not thread-safe: one controller per decision loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from types import MappingProxyType

from qres_client.decision import Action, Decision

__all__ = ["Controller"]


class Controller:
    """A small stateful wrapper around ``decide`` that applies ``act_after_s`` and ``hold_s`` (module docstring)."""

    def __init__(self, decide: Callable[..., Decision], *, initial: Mapping[str, float] | None = None) -> None:
        self._decide = decide
        self._admit: dict[str, float] = dict(initial or {})
        self._hold_until: dict[str, float] = {}
        self._cap: dict[str, float] = {}  # admit_max in force, when the bundle ships it
        self._cap_hold: dict[str, float] = {}
        self._scenario: str | None = None
        self._entered_s = 0.0
        self._last_s: float | None = None

    @property
    def shares(self) -> Mapping[str, float]:
        """The shares in force (workload id -> admitted share)."""
        return MappingProxyType(dict(self._admit))

    def step(self, now_s: float, down: Iterable[str] = (), degraded: Iterable[str] = ()) -> Decision:
        """The shares to apply at ``now_s`` (seconds on any monotonic clock) for the observed state."""
        now_s = float(now_s)
        if self._last_s is not None and now_s < self._last_s:
            raise ValueError(f"time went backwards: {now_s} after {self._last_s}; use a monotonic clock")
        self._last_s = now_s
        decision = self._decide(down=tuple(down), degraded=tuple(degraded))
        if decision.scenario != self._scenario:
            self._scenario, self._entered_s = decision.scenario, now_s
        elapsed = now_s - self._entered_s
        return replace(decision, actions=tuple(self._apply(a, now_s, elapsed) for a in decision.actions))

    @staticmethod
    def settled(decision: Decision) -> bool:
        """Whether a decision this controller returned is final while the state lasts: every share and cap in
        force is the plan's and no long-run step (``then_after_s``) is still to come. A caller may then reuse
        it without stepping again until the observed state changes."""
        for a in decision.actions:
            x = a.extras
            target = float(x.get("target", a.admit))
            if float(a.admit) != target or float(x.get("then_admit", target)) < target:
                return False
            if "admit_max" in x and float(x["admit_max"]) != float(x.get("target_max", x["admit_max"])):
                return False
        return True

    def _apply(self, action: Action, now_s: float, elapsed: float) -> Action:
        w, target = action.workload_id, float(action.admit)
        act_after = float(action.extras.get("act_after_s", 0.0))
        hold = float(action.extras.get("hold_s", 0.0))
        late = "then_after_s" in action.extras and elapsed >= float(action.extras["then_after_s"])
        ceiling = float(action.extras["then_admit"]) if late else float("inf")
        target = min(target, ceiling)
        share = self._move(self._admit, self._hold_until, w, target, now_s, elapsed, act_after, hold)
        extras = {**action.extras, "target": target}
        if "admit_max" in action.extras:
            cap_target = min(float(action.extras["admit_max"]), ceiling)
            extras["target_max"] = cap_target
            extras["admit_max"] = self._move(self._cap, self._cap_hold, w, cap_target, now_s, elapsed, act_after, hold)
        return replace(action, admit=share, extras=MappingProxyType(extras))

    @staticmethod
    def _move(shares, holds, w, target, now_s, elapsed, act_after, hold) -> float:
        """One workload's share (or cap) in force after this step, by the module's two rules."""
        current = shares.get(w)
        if current is None:
            share = target
        elif target < current:
            share = target if elapsed >= act_after else current
        elif target > current:
            share = target if elapsed >= act_after and now_s >= holds.get(w, float("-inf")) else current
        else:
            share = current
        if current is not None and share != current:
            holds[w] = now_s + hold
        shares[w] = share
        return share
