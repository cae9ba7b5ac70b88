"""Outage scenarios: which dependencies are down or degraded, how likely, for how long.

The runtime client imports this module for ``scenario_key`` and the dataclasses, with only
pyarrow installed: numpy and the failure model are imported inside ``build_scenarios``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import pyarrow as pa

from policies.graph import close_down_set, hard_dependents, root_down_set
from policies.ids import escape_id

if TYPE_CHECKING:
    from policies.model.failure_model import FailureModel

__all__ = ["Scenario", "ScenarioSet", "scenario_key", "escape_id", "build_scenarios", "NORMAL_KEY", "FALLBACK_KEY"]

NORMAL_KEY = "normal"
FALLBACK_KEY = "fallback:all-down"


def scenario_key(down: Iterable[str], degraded: Iterable[str] = ()) -> str:
    """Canonical key of a scenario: ``down=a,b;degraded=c`` (ids escaped), or ``normal``."""
    d, g = sorted(set(down)), sorted(set(degraded) - set(down))
    if not d and not g:
        return NORMAL_KEY
    parts = [f"{name}=" + ",".join(map(escape_id, ids)) for name, ids in (("down", d), ("degraded", g)) if ids]
    return ";".join(parts)


@dataclass(frozen=True)
class Scenario:
    """One state of the world the policies are solved for.

    ``down`` and ``degraded`` are root causes (sorted); ``effective_down`` adds
    everything they take down through hard dependencies and is what a runtime
    client matches its observations against.
    """

    key: str
    down: tuple[str, ...]
    degraded: tuple[str, ...]
    effective_down: tuple[str, ...]
    probability: float
    expected_duration_min: float
    source: str  # normal | empirical | sampled | single | what-if:<name> | fallback
    capacity_left: tuple[tuple[str, float], ...] = ()  # (capacity-carrying service, capacity left)


@dataclass(frozen=True)
class ScenarioSet:
    scenarios: tuple[Scenario, ...]
    target_mass: float
    covered_mass: float  # probability mass of the kept scenarios (normal included)
    info: dict = field(default_factory=dict)


_DEFAULT_DURATION_MIN = 60.0  # when no outage at all was observed


def build_scenarios(
    model: FailureModel,
    dependencies: pa.Table,
    *,
    target_mass: float = 0.995,
    dependency_ids: Iterable[str] | None = None,
    include_degraded: bool = True,
    services: pa.Table | None = None,
    what_if: Iterable[dict] = (),
    sample_max: int = 0,
    sample_min_probability: float = 1e-6,
    sample_params: dict | None = None,
    seed: int = 0,
    degraded_capacity_share: float = 0.5,
    single_outages: str = "all",
) -> ScenarioSet:
    """The scenarios to solve for: observed patterns covering ``target_mass``, every
    single-dependency outage, and a fallback that covers everything.

    - A window's pattern is its root down set (``root_down_set`` over hard edges, so a region
      outage is ``down=region-x``, not the region plus its dependents) and its degraded
      services minus everything the down set takes down. ``include_degraded=False`` reads
      degraded as up.
    - Empirical probability = windows with the pattern / all windows; expected duration = mean
      length of its maximal runs of consecutive windows.
    - Kept: ``normal`` (always) plus the most probable patterns (ties by key), the smallest
      prefix whose mass with ``normal`` reaches ``target_mass``; that mass is ``covered_mass``.
    - Each id of ``dependency_ids`` (default: everything some service depends on) gets a
      ``down=<id>`` scenario unless one was kept: its probability is the empirical one of
      exactly that pattern when seen, else ``prior_a / (windows + prior_a + prior_b)`` (the
      posterior mean of a pattern never seen, with the fit's Beta prior); its duration is the
      dependency's ``mttr_min``, else the median of all completed outage episodes (those not cut
      by the start or end of the data), else 60 min. These
      probabilities are not counted in ``covered_mass``. ``single_outages="observed"`` (coverage, the
      nightly's default) adds only those whose pattern was seen: enumerating one per dependency
      grows the solve with the fleet for states that carry no observed mass, and a runtime
      client answers an unnamed state with its greedy on that state (``fallback.json``).
    - ``sample_max > 0`` adds up to that many multi-failure combinations proposed by the joint
      (Ising) model and never kept otherwise (``source="sampled"``; see
      :mod:`policies.scenarios.sources`), so a runtime observation of several dependencies down
      finds a close cover instead of the all-down fallback. ``sample_params`` go to the sampler
      (``num_reads``, ``num_sweeps``, ``beta``, ``l2``). Not counted in ``covered_mass``.
    - ``what_if`` scenarios from config (``source="what-if:<name>"``) are added as named; one
      whose state is already in the set is merged into that scenario (source
      ``<source>+what-if:<name>``, the larger duration and probability).
    - The fallback (probability 0) has every depended-on service down and everything down
      effectively, so any state a runtime client observes is covered by it.
    - With ``services``, each scenario carries ``capacity_left``: the capacity of every region
      service, 0 when effectively down, ``degraded_capacity_share`` of it when degraded.

    Order: ``normal``, then probability descending, then key; fallback last.
    """
    import numpy as np

    from policies.model.failure_model import list_outages
    from policies.scenarios.sources import count_sources, merge_what_if, parse_what_if, propose_sampled

    if not 0.0 < target_mass <= 1.0:
        raise ValueError(f"target_mass must be in (0, 1], e.g. 0.995; got {target_mass!r}")
    if single_outages not in ("all", "observed"):
        raise ValueError(f"single_outages must be 'all' or 'observed'; got {single_outages!r}")
    edges = list(
        zip(
            dependencies.column("service_id").to_pylist(),
            dependencies.column("depends_on").to_pylist(),
            dependencies.column("hard").to_pylist(),
        )
    )
    dependents = hard_dependents(edges)
    n_w = model.states.shape[0]
    patterns, stats, n_rows = _count_patterns(model, dependents, include_degraded)

    def make(key: str, probability: float, duration_min: float, source: str) -> Scenario:
        down, degraded, effective = patterns[key]
        return Scenario(key, down, degraded, effective, float(probability), float(duration_min), source)

    normal_count, normal_p, normal_min = stats.get(NORMAL_KEY, (0, 0.0, 0.0))
    normal = make(NORMAL_KEY, normal_p, normal_min, "normal")
    ranked = sorted((k for k in stats if k != NORMAL_KEY), key=lambda k: (-stats[k][0], k))
    kept: list[Scenario] = []
    covered = normal_count
    for key in ranked:
        if covered + 1e-9 >= target_mass * n_w:  # counts are exact; the product may not be
            break
        kept.append(make(key, stats[key][1], stats[key][2], "empirical"))
        covered += stats[key][0]

    prior_a, prior_b = model.info.get("prior", (0.5, 0.5))
    never_seen_p = prior_a / (n_w + prior_a + prior_b)
    depended_on = sorted(set(dependencies.column("depends_on").to_pylist()))
    outages = list_outages(model)
    episodes_min = outages.loc[~outages["censored"], "duration_min"].to_numpy()
    default_min = float(np.median(episodes_min)) if episodes_min.size else _DEFAULT_DURATION_MIN
    mttr = dict(zip(model.per_dependency["service_id"], model.per_dependency["mttr_min"]))
    kept_keys = {s.key for s in kept}
    singles = []
    for dep in depended_on if dependency_ids is None else sorted(set(dependency_ids)):
        key = scenario_key([dep])
        if key in kept_keys or (single_outages == "observed" and key not in stats):
            continue
        duration = mttr.get(dep, math.nan)
        patterns[key] = ((dep,), (), tuple(sorted(close_down_set([dep], dependents))))
        p = stats[key][1] if key in stats else never_seen_p
        singles.append(make(key, p, default_min if math.isnan(duration) else duration, "single"))

    taken = kept_keys | {s.key for s in singles} | {NORMAL_KEY}
    recovery = dict(zip(model.per_dependency["service_id"], model.per_dependency["recovery_rate_per_min"]))
    proposed, sample_info = propose_sampled(
        patterns,
        stats,
        dependents,
        recovery,
        taken,
        max_count=sample_max,
        min_probability=sample_min_probability,
        seed=seed,
        **(sample_params or {}),
    )
    sampled = [
        Scenario(key, down, (), eff, p, default_min if math.isnan(d) else d, "sampled")
        for key, down, eff, p, d in proposed
    ]
    taken |= {s.key for s in sampled}
    everything = set(model.services) | {s for edge in edges for s in edge[:2]}
    known = everything | (set(services.column("service_id").to_pylist()) if services is not None else set())
    extra = []
    for w in parse_what_if(what_if, known):
        root = tuple(sorted(root_down_set(w["down"], dependents)))
        effective = close_down_set(root, dependents)
        degraded = tuple(sorted(set(w["degraded"]) - effective))
        key = scenario_key(root, degraded)
        if key not in taken:
            taken.add(key)
            extra.append(
                Scenario(
                    key,
                    root,
                    degraded,
                    tuple(sorted(effective)),
                    w["probability"],
                    w["duration_min"],
                    f"what-if:{w['name']}",
                )
            )
            continue
        # The what-if names a state already in the set: keep one scenario, but let the
        # what-if's name, duration and probability count (the larger of each).
        kept, singles, sampled, extra = (
            [merge_what_if(s, w) if s.key == key else s for s in group] for group in (kept, singles, sampled, extra)
        )
    fallback = Scenario(FALLBACK_KEY, tuple(depended_on), (), tuple(sorted(everything)), 0.0, default_min, "fallback")
    middle = sorted(kept + singles + sampled + extra, key=lambda s: (-s.probability, s.key))
    ordered = (normal, *middle, fallback)
    if services is not None:
        ordered = tuple(_with_capacity(s, services, degraded_capacity_share) for s in ordered)
    return ScenarioSet(
        scenarios=ordered,
        target_mass=float(target_mass),
        covered_mass=covered / n_w,
        info={
            "windows": n_w,
            "n_state_rows": n_rows,
            "n_empirical_patterns": len(ranked),
            "n_kept_empirical": len(kept),
            "n_single_added": len(singles),
            "n_sampled_added": len(sampled),
            "sampled_mass": sum(s.probability for s in sampled),
            "n_what_if_added": len(extra),
            "sampling": sample_info,
            "by_source": count_sources(ordered),
            "single_prior_probability": never_seen_p,
            "include_degraded": include_degraded,
            "single_outages": single_outages,
        },
    )


def _with_capacity(s: Scenario, services: pa.Table, degraded_share: float) -> Scenario:
    """``s`` with the capacity left of every region service (as shedding computes it)."""
    left = []
    for sid, kind, cap in zip(
        services.column("service_id").to_pylist(),
        services.column("kind").to_pylist(),
        services.column("capacity").to_pylist(),
    ):
        if kind != "region":
            continue
        share = 0.0 if sid in s.effective_down else (degraded_share if sid in s.degraded else 1.0)
        left.append((sid, float(cap or 0.0) * share))
    return replace(s, capacity_left=tuple(sorted(left)))


def _count_patterns(model: FailureModel, dependents: dict, include_degraded: bool) -> tuple[dict, dict, int]:
    """Each window's (root down, degraded) pattern, counted.

    Returns ``patterns`` (key -> (down, degraded, effective_down)), ``stats`` (key -> (windows,
    probability, mean run length in minutes), for patterns seen) and the number of distinct
    state rows. Root sets are computed once per distinct row, not per window; most windows are
    all up, so only the others go through ``np.unique`` (sorting rows of bytes is the slow part).
    """
    import numpy as np

    from policies.model.failure_model import DEGRADED, DOWN, UP

    names = np.asarray(model.services, dtype=object)
    states = model.states if include_degraded else np.where(model.states == DEGRADED, UP, model.states)
    n_w = states.shape[0]
    busy = np.flatnonzero(states.any(axis=1))
    rows, inverse = np.unique(states[busy], axis=0, return_inverse=True)
    patterns = {NORMAL_KEY: ((), (), ())}
    row_keys = []
    for row in rows:
        root = root_down_set(names[row == DOWN], dependents)
        effective = close_down_set(root, dependents)
        degraded = tuple(sorted(set(names[row == DEGRADED]) - effective))
        key = scenario_key(root, degraded)
        patterns[key] = (tuple(sorted(root)), degraded, tuple(sorted(effective)))
        row_keys.append(key)
    keys = sorted(patterns)
    key_of_row = np.searchsorted(np.asarray(keys, dtype=object), np.asarray(row_keys, dtype=object))
    window_key = np.full(n_w, keys.index(NORMAL_KEY), dtype=np.int64)
    window_key[busy] = key_of_row[np.ravel(inverse)]
    counts = np.bincount(window_key, minlength=len(keys))
    runs = np.bincount(window_key[np.r_[True, window_key[1:] != window_key[:-1]]], minlength=len(keys))
    stats = {k: (int(c), int(c) / n_w, int(c) / int(r) * model.window_min) for k, c, r in zip(keys, counts, runs) if c}
    return patterns, stats, len(rows) + int(busy.size < n_w)
