"""The planted truths: a seeded outage schedule and the status cube it produces.

Why: what the pipeline estimates is checked against what was planted, so the events are
explicit (region and SaaS outages with their hard dependents down and soft ones degraded,
single-service outages, degradations, one-probe flaps) and never overlap on a service. Counts
grow with the span and the fleet (about 8 outages and 6 degradations per 40 services per 30 days,
a region and a SaaS outage per 90 days), and never ask for more services than there are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policies.graph import close_down_set, hard_dependents
from policies.telemetry.sample.fleet import CLASSIC_SERVICES, Topology

__all__ = ["DEGRADED", "DOWN", "UP", "Event", "plan_events", "simulate_status"]

UP, DEGRADED, DOWN = 0, 1, 2  # indices into schema.STATUSES
MARGIN_MIN, GAP_MIN, FLAP_P = 30, 30, 0.005


@dataclass(frozen=True)
class Event:
    kind: str  # region | saas | single | degraded
    root: str
    start_min: int
    dur_min: int
    down: frozenset[str]
    degraded: frozenset[str]


def plan_events(rng: np.random.Generator, topo: Topology, n_min: int) -> tuple[list[Event], frozenset[str]]:
    """The seeded outage schedule; windows of events that touch a service never overlap."""
    dependents = hard_dependents(topo.edges())
    soft: dict[str, set[str]] = {}
    for s, d, hard in topo.edges():
        if not hard:
            soft.setdefault(d, set()).add(s)
    busy = {s: np.zeros(n_min, bool) for s in topo.ids}
    events: list[Event] = []

    def place(kind: str, root: str, lo: int, hi: int) -> None:
        down = frozenset([root]) if kind == "degraded" else close_down_set([root], dependents)
        degraded = frozenset() if kind == "degraded" else frozenset(x for d in down for x in soft.get(d, ())) - down
        for _ in range(200):
            dur = int(rng.integers(lo, hi + 1))
            if n_min - dur - MARGIN_MIN <= MARGIN_MIN:
                return
            t0 = int(rng.integers(MARGIN_MIN, n_min - dur - MARGIN_MIN))
            a, b = max(0, t0 - GAP_MIN), t0 + dur + GAP_MIN
            if not any(busy[s][a:b].any() for s in down | degraded):
                for s in down | degraded:
                    busy[s][a:b] = True
                events.append(Event(kind, root, t0, dur, down, degraded))
                return

    days = n_min / 1440
    scale = len(topo.ids) / CLASSIC_SERVICES
    big = max(1, round(days / 90))  # region and SaaS outages: one each per 90 days
    for _ in range(big):
        place("region", str(rng.choice(list(topo.regions))), 40, 90)
    for i in range(big):
        story = ["saas-invoice-validation", "saas-payments"] if i == 0 else list(topo.saas)
        place("saas", str(rng.choice(story)), 30, 120)
    hit = frozenset().union(*(e.down for e in events))
    calm = [s for s in topo.internal if s not in hit]
    quiet = frozenset(str(s) for s in rng.choice(calm, min(max(3, round(3 * scale)), len(calm)), replace=False))
    small = [
        s
        for s in topo.ids
        if topo.kind[s] != "region" and len(down := close_down_set([s], dependents)) <= 3 and not down & quiet
    ]
    saas_pool = [s for s in small if topo.kind[s] == "saas"]
    n_single = max(2, round(8 * days / 30 * scale))
    roots = [str(rng.choice(saas_pool))] if saas_pool else []  # at least one SaaS on its own
    others = [s for s in small if s not in roots]
    # A long span fails the same service more than once (drawn with replacement only then).
    k = n_single - len(roots)
    roots += [str(s) for s in rng.choice(others, k, replace=k > len(others))] if others else []
    for r in roots:
        place("single", r, 5, 60)
    pool = [s for s in topo.ids if topo.kind[s] != "region" and s not in quiet]
    k = max(1, round(6 * days / 30 * scale))
    for r in rng.choice(pool, k, replace=k > len(pool)):
        place("degraded", str(r), 10, 90)
    return sorted(events, key=lambda e: (e.start_min, e.root)), quiet


def simulate_status(
    rng: np.random.Generator, topo: Topology, events: list[Event], quiet: frozenset[str], n_min: int, n_probes: int
) -> np.ndarray:
    """Status codes shaped (minute, service, probe): planted events, then one-probe flaps."""
    col = {s: j for j, s in enumerate(topo.ids)}
    status = np.zeros((n_min, len(topo.ids), n_probes), np.int8)
    for ev in events:
        skew = rng.integers(-1, 2, size=(n_probes, 2))
        skew[0] = 0  # the first probe is the reference; others see it a minute early or late
        code = DEGRADED if ev.kind == "degraded" else DOWN
        marks = [(s, code) for s in sorted(ev.down)] + [(s, DEGRADED) for s in sorted(ev.degraded)]
        for s, c in marks:
            lag = 0 if s == ev.root else int(rng.integers(0, 2))  # dependents follow a bit later
            for p in range(n_probes):
                a = max(0, ev.start_min + lag + int(skew[p, 0]))
                b = min(n_min, ev.start_min + ev.dur_min + int(skew[p, 1]))
                view = status[a:b, col[s], p]
                np.maximum(view, c, out=view)
    flappy = [s for s in topo.ids if topo.kind[s] in ("internal", "edge") and s not in quiet]
    n_flappy = min(len(flappy), max(2, round(2 * len(topo.ids) / CLASSIC_SERVICES)))
    for s in sorted(str(x) for x in rng.choice(flappy, n_flappy, replace=False)):
        j = col[s]
        hit = rng.random((n_min, n_probes)) < FLAP_P
        kind = np.where(rng.random((n_min, n_probes)) < 0.6, DOWN, DEGRADED).astype(np.int8)
        lone = hit & (hit.sum(axis=1, keepdims=True) == 1)  # one probe only
        lone[1:] &= ~hit[:-1]
        lone[:-1] &= ~hit[1:]  # one minute only
        calm = (status[:, j, :] == UP).all(axis=1, keepdims=True)
        calm[1:] &= calm[:-1].copy()
        calm[:-1] &= calm[1:].copy()  # and up around it, so the blip stands alone
        status[:, j, :] = np.where(lone & calm, kind, status[:, j, :])
    return status
