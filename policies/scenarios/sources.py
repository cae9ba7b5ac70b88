"""Scenario sources beyond the empirical patterns: samples from the joint model and what-ifs.

- **sampled**: an Ising model (:mod:`policies.model.joint`) is fitted on the root-cause down sets of
  every window (each distinct pattern weighted by its window count); a dimod sampler proposes
  combinations, each is reduced to its root set over the hard edges, and those with at least two
  roots that no other scenario names are scored by the model:
  ``P(x) = exp(h·x + Σ J_ij x_i x_j) / Z``, with ``Z`` summed over the observed patterns and the
  proposals (so probabilities stay below 1). The most probable ``max_count`` above
  ``min_probability`` are kept. Their expected duration is ``1 / Σ mu_i``: the state ends as soon
  as the first of its dependencies recovers (the dependencies' recovery rates ``mu``).
- **what-if**: named in config (``{name, down, degraded, duration_min, probability}``); their
  probability defaults to 0, so they are solved and shipped but do not weigh the expected value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import replace

import numpy as np

from policies.graph import close_down_set, root_down_set
from policies.model.joint import fit_ising, sample_ising
from policies.scenarios.scenario_set import Scenario, scenario_key

__all__ = ["propose_sampled", "parse_what_if", "merge_what_if", "count_sources"]


def propose_sampled(
    patterns: dict,
    stats: dict,
    dependents: Mapping,
    recovery_per_min: Mapping[str, float],
    taken: set[str],
    *,
    max_count: int,
    min_probability: float,
    seed: int,
    num_reads: int = 400,
    num_sweeps: int = 200,
    beta: float = 0.5,
    l2: float = 1.0,
) -> tuple[list[tuple], dict]:
    """Multi-failure combinations proposed by the joint model and never kept otherwise.

    ``patterns``/``stats`` are the empirical patterns (key -> (down, degraded, effective) and
    key -> (windows, probability, duration)); ``taken`` the keys already in the set. Returns
    ``[(key, down, effective, probability, duration_min)]`` (most probable first) and fit info.
    """
    roots = {k: patterns[k][0] for k in stats}
    names = tuple(sorted({s for r in roots.values() for s in r}))
    info = {"ising_variables": len(names), "proposed": 0, "candidates": 0}
    if max_count <= 0 or len(names) < 2:
        return [], info
    col = {s: i for i, s in enumerate(names)}
    keys = sorted(stats)
    x = np.zeros((len(keys), len(names)))
    for r, k in enumerate(keys):
        x[r, [col[s] for s in roots[k]]] = 1.0
    weights = np.array([stats[k][0] for k in keys], dtype=np.float64)
    model = fit_ising(names, x, weights, l2=l2)
    samples = sample_ising(model, num_reads=num_reads, num_sweeps=num_sweeps, beta=beta, seed=seed)
    multi = samples[samples.sum(axis=1) >= 2]
    info["proposed"] = int(multi.shape[0])
    # Normalize over the observed patterns and the proposals together (a lower bound of the
    # partition function), so probabilities stay <= 1 even when "all up" was rarely observed.
    log_q = model.log_probability(np.vstack([x, multi])) - model.log_p0
    log_p = log_q[len(keys) :] - np.logaddexp.reduce(log_q)
    names_arr = np.asarray(names, dtype=object)
    best: dict[str, tuple] = {}
    for row, lp in zip(multi, log_p):  # one loop per distinct proposed combination
        root = tuple(sorted(root_down_set(names_arr[row.astype(bool)], dependents)))
        key = scenario_key(root)
        p = float(math.exp(lp))
        if len(root) < 2 or key in taken or p < min_probability:
            continue
        if key not in best or p > best[key][3]:
            mu = sum(recovery_per_min.get(s, 0.0) for s in root)
            duration = 1.0 / mu if mu > 0 else math.nan
            best[key] = (key, root, tuple(sorted(close_down_set(root, dependents))), p, duration)
    info["candidates"] = len(best)
    kept = sorted(best.values(), key=lambda c: (-c[3], c[0]))[:max_count]
    return kept, info


def parse_what_if(items: Iterable[Mapping], known: set[str]) -> list[dict]:
    """Check what-if scenarios from config; ValueError naming the scenario and the problem."""
    out = []
    for i, item in enumerate(items):
        name = str(item.get("name") or f"what-if #{i + 1}")
        down, degraded = tuple(item.get("down") or ()), tuple(item.get("degraded") or ())
        unknown = sorted((set(down) | set(degraded)) - known)
        if unknown:
            raise ValueError(
                f"what-if scenario {name!r}: unknown service(s) {unknown}; use ids from the services table"
            )
        if not down and not degraded:
            raise ValueError(f"what-if scenario {name!r}: name at least one service in down or degraded")
        duration = float(item.get("duration_min", 60.0))
        probability = float(item.get("probability", 0.0))
        if not duration > 0 or not 0.0 <= probability <= 1.0:
            raise ValueError(
                f"what-if scenario {name!r}: duration_min must be > 0 and probability in [0, 1]; "
                f"got {duration!r}, {probability!r}"
            )
        out.append(
            {"name": name, "down": down, "degraded": degraded, "duration_min": duration, "probability": probability}
        )
    return out


def merge_what_if(existing: Scenario, what_if: dict) -> Scenario:
    return replace(
        existing,
        source=f"{existing.source}+what-if:{what_if['name']}",
        probability=max(existing.probability, float(what_if["probability"])),
        expected_duration_min=max(existing.expected_duration_min, float(what_if["duration_min"])),
    )


def count_sources(scenarios: Iterable[Scenario]) -> dict[str, int]:
    """Scenarios per source (what-ifs together), for provenance in the manifest and the summary."""
    out: dict[str, int] = {}
    for s in scenarios:
        name = s.source.split("+", 1)[0].split(":", 1)[0]  # a merged what-if counts under its first source
        out[name] = out.get(name, 0) + 1
    return dict(sorted(out.items()))
