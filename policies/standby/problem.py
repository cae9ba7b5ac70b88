r"""The standby problem, its exact objective and feasibility: what every standby solver is judged by.

Model (one problem for all scenarios; candidates c in sorted-id order)::

    maximize    sum_s p_s  sum_{j down in s}  V_j * max_{c chosen, svc(c) = j, site(c) up in s} cov_c
    subject to  sum_{c at site i} cost_c x_c  <=  B_i          for every site i
                x_c in {0, 1}

V_j is the value per hour that stops when service j is down (the workloads that run on it or
hard-require it), cov_c the share of it a standby keeps. A site is up in s when neither the site
nor its region is down. The ``max`` is what makes standbys worth less together: a second copy of
a service only adds value in the scenarios where the first one's site is down too, or where it
covers more; two copies on sites that fail together add (almost) nothing.

The objective is stored compactly: one *pair* per (service, set of usable candidates), the
scenario weights p_s V_j of all scenarios with the same pair summed. ``gain[k, c] = W_k cov_c``
for the candidates usable in pair k, so the objective is ``sum_k max_c gain[k, c] x_c``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

__all__ = ["StandbyProblem", "standby_objective", "is_feasible_standby", "standby_problem_from_dict", "check_choice"]

_TOL = 1e-9


@dataclass(frozen=True, eq=False)
class StandbyProblem:
    """Candidates (sorted ids), their site, service, cost; site budgets; the objective pairs."""

    key: str
    candidate_ids: tuple[str, ...]
    site_ids: tuple[str, ...]
    service_ids: tuple[str, ...]
    site: np.ndarray  # (n,) index into site_ids
    service: np.ndarray  # (n,) index into service_ids
    cost: np.ndarray  # (n,)
    coverage: np.ndarray  # (n,)
    budget: np.ndarray  # (m,)
    gain: sp.csr_matrix  # (pairs, n): W_k cov_c where c is usable in pair k
    at_stake: float = 0.0  # sum_s p_s sum_{j down in s} V_j: the expected loss with no standby at all

    def __post_init__(self) -> None:
        n = len(self.candidate_ids)
        if list(self.candidate_ids) != sorted(set(self.candidate_ids)):
            raise ValueError(f"{self.key}: candidate_ids must be unique and sorted (they fix the variable order)")
        for name in ("cost", "coverage"):
            a = np.asarray(getattr(self, name), dtype=np.float64)
            if a.shape != (n,) or not np.all(np.isfinite(a)) or np.any(a < 0):
                raise ValueError(f"{self.key}: {name} must be {n} finite numbers >= 0")
        if np.any(np.asarray(self.coverage) > 1):
            raise ValueError(f"{self.key}: coverage must be within 0..1")
        b = np.asarray(self.budget, dtype=np.float64)
        if b.shape != (len(self.site_ids),) or not np.all(np.isfinite(b)) or np.any(b < 0):
            raise ValueError(f"{self.key}: budget must be {len(self.site_ids)} finite numbers >= 0")
        if self.gain.shape[1] != n:
            raise ValueError(f"{self.key}: gain has {self.gain.shape[1]} columns, expected {n}")

    @functools.cached_property
    def tolerance(self) -> np.ndarray:
        return _TOL * np.maximum(1.0, self.budget)

    @functools.cached_property
    def gain_csc(self) -> sp.csc_matrix:
        return self.gain.tocsc()

    @functools.cached_property
    def solo_value(self) -> np.ndarray:
        """Each candidate's objective when chosen alone (an upper bound on its marginal value)."""
        return np.asarray(self.gain.sum(axis=0)).reshape(-1)


def check_choice(problem: StandbyProblem, x) -> np.ndarray:
    x = np.asarray(x)
    if x.shape != (len(problem.candidate_ids),):
        raise ValueError(f"{problem.key}: expected {len(problem.candidate_ids)} choices, got shape {x.shape}")
    return x


def standby_objective(problem: StandbyProblem, x) -> float:
    """Exact expected covered value per hour: sum over pairs of the best chosen usable candidate."""
    x = check_choice(problem, x).astype(np.float64)
    if problem.gain.shape[0] == 0:
        return 0.0
    chosen = problem.gain @ sp.diags(x)
    return float(np.asarray(chosen.max(axis=1).todense()).sum())


def is_feasible_standby(problem: StandbyProblem, x) -> bool:
    """0/1 choices whose cost fits every site budget (within 1e-9 relative)."""
    x = check_choice(problem, x)
    if not np.all((x == 0) | (x == 1)):
        return False
    spent = np.bincount(problem.site, weights=problem.cost * x, minlength=len(problem.site_ids))
    return bool(np.all(spent <= problem.budget + problem.tolerance))


def standby_problem_from_dict(doc: dict, *, key: str | None = None) -> StandbyProblem:
    """Build from the documented JSON form (docs/families.md, "Problem files and `qres solve`").

    ``{"sites": [{"site_id", "region", "budget"}], "candidates": [{"candidate_id", "service_id",
    "site_id", "cost", "coverage"}], "services": [{"service_id", "value_per_hour"}],
    "scenarios": [{"key", "probability", "down": [...]}]}``: a site is down in a scenario when
    its id or its region is listed in ``down``; a service needs its standby when listed there.
    """

    def need(obj: dict, field: str, where: str):
        if field not in obj:
            raise ValueError(f"standby problem: {where} lacks field {field!r} (got {sorted(obj)})")
        return obj[field]

    for section in ("sites", "candidates", "services", "scenarios"):
        if not isinstance(doc.get(section), list):
            raise ValueError(f"standby problem: {section!r} must be a list")
    sites = {str(need(s, "site_id", "a site")): s for s in doc["sites"]}
    site_ids = tuple(sorted(sites))
    cands = sorted(doc["candidates"], key=lambda c: str(need(c, "candidate_id", "a candidate")))
    ids = [str(c["candidate_id"]) for c in cands]
    if len(set(ids)) != len(ids):
        raise ValueError("standby problem: candidate_id values must be unique")
    value = {
        str(need(s, "service_id", "a service")): float(need(s, "value_per_hour", "a service")) for s in doc["services"]
    }
    svc_ids = tuple(sorted({str(need(c, "service_id", f"candidate {c['candidate_id']}")) for c in cands}))
    for c in cands:
        if str(need(c, "site_id", f"candidate {c['candidate_id']}")) not in sites:
            raise ValueError(f"standby problem: candidate {c['candidate_id']!r} names unknown site {c['site_id']!r}")
    site_idx = np.array([site_ids.index(str(c["site_id"])) for c in cands], dtype=np.int64)
    svc_idx = np.array([svc_ids.index(str(c["service_id"])) for c in cands], dtype=np.int64)
    coverage = np.array([float(need(c, "coverage", f"candidate {c['candidate_id']}")) for c in cands])
    cost = np.array([float(need(c, "cost", f"candidate {c['candidate_id']}")) for c in cands])
    region = [sites[s].get("region") for s in site_ids]
    weights: dict[tuple[int, tuple[int, ...]], float] = {}
    at_stake = 0.0
    for sc in doc["scenarios"]:
        p = float(need(sc, "probability", "a scenario"))
        if not (math.isfinite(p) and p >= 0):
            raise ValueError(f"standby problem: scenario {sc.get('key')!r} has probability {p!r}; need >= 0")
        down = set(map(str, sc.get("down", [])))
        up_site = np.array([s not in down and (r is None or r not in down) for s, r in zip(site_ids, region)])
        for j, svc in enumerate(svc_ids):
            w = p * value.get(svc, 0.0)
            if svc not in down or w <= 0:
                continue
            at_stake += w
            usable = tuple(np.flatnonzero((svc_idx == j) & up_site[site_idx] & (coverage > 0)).tolist())
            if usable:
                weights[(j, usable)] = weights.get((j, usable), 0.0) + w
    rows, cols, vals = [], [], []
    for k, ((_, usable), w) in enumerate(sorted(weights.items())):
        rows += [k] * len(usable)
        cols += list(usable)
        vals += [w * coverage[c] for c in usable]
    gain = sp.csr_matrix((vals, (rows, cols)), shape=(len(weights), len(ids)), dtype=np.float64)
    return StandbyProblem(
        key=key or str(doc.get("key", "standby")),
        candidate_ids=tuple(ids),
        site_ids=site_ids,
        service_ids=svc_ids,
        site=site_idx,
        service=svc_idx,
        cost=cost,
        coverage=coverage,
        budget=np.array([float(need(sites[s], "budget", f"site {s}")) for s in site_ids]),
        gain=gain,
        at_stake=at_stake,
    )
