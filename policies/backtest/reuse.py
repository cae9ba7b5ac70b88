"""Reuse of the previous backtest's replay: an incident is scored again only when something it depends on changed.

An incident's figures (:func:`policies.backtest.metrics.incident_figures`) are a function of its
true and observed states, every replayed policy's decisions on them (window -1 included), the
problems those states pose (the services, dependencies and workloads tables), the switching
costs, the normal state's value and the settings the oracle solves with. :func:`replay_key`
hashes exactly that, so a key that matches the previous run's gives the same figures without
solving the oracle's states again; a retrained published policy that decides differently on an
incident, a new incident or any change of tables or settings is a miss and is replayed.

The policies' decisions are part of the key, so they are always taken (cheap: index look-ups and
the memoized greedy); what a hit saves is the oracle (a CP-SAT solve per distinct true state and
the dynamic programme) and the figures. Where entries are kept is the caller's
(:class:`ReplayStore`; the nightly's is HMAC'd JSON in the state folder, tasks/backtest.py).

Most of a backtest's time is training the policy on the past (measured on the sample: 9.9 of
10.4 s, nearly all of it the solves), and most of the past's scenarios pose the same problems as
the nightly's own. :data:`Solve` lets the caller answer those solves from the nightly's
content-addressed solve cache (same problem, seed and settings: the same result as solving).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa

from policies.backtest.costs import SwitchCosts
from policies.backtest.replay import PolicyRun

__all__ = [
    "ReplayStore",
    "IncidentReuse",
    "Solve",
    "SOLVE_TOP_K",
    "solve_with",
    "replay_base",
    "replay_key",
    "with_position",
]

#: ``solve(family, problems, params)``: every problem's portfolio result, in order, as
#: ``Family.solve_each(problems, **params)`` gives it (params: seed, time_limit_s, solvers, anneal, top_k).
Solve = Callable[[str, Sequence[Any], Mapping[str, Any]], list]
SOLVE_TOP_K = 3  # Family.solve_each's default, which the backtest's own solves use


def solve_with(solve: Solve | None, family, problems: Sequence[Any], params: Mapping[str, Any], progress=None) -> list:
    """``solve``'s answers for ``family``'s problems, or the family's own solve here when None."""
    if solve is None:
        return family.solve_each(problems, **params, progress=progress)
    return solve(family.name, problems, {**params, "top_k": SOLVE_TOP_K})


_FORMAT = "backtest-replay-v1"  # bump when the figures or the replay rules change: old entries become misses
_PROBLEM_TABLES = ("services", "dependencies", "workloads")
_STANDBY_TABLES = ("sites", "standby_candidates")  # where a held placement serves (policies/backtest/standby.py)
# The code the figures come from, hashed into every key: an upgrade that changes the replay, the
# figures, the costs or the problem's objective makes the stored figures misses by itself.
_POLICIES = Path(__file__).resolve().parents[1]
_CODE = ("backtest/*.py", "switching.py", "risk.py", "shedding/problem.py", "shedding/solvers.py")


@cache
def _code_digest() -> str:
    h = hashlib.sha256()
    for pattern in _CODE:
        for path in sorted(_POLICIES.glob(pattern)):
            h.update(path.relative_to(_POLICIES).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


class ReplayStore(Protocol):
    """Where the figures of replayed incidents are kept between runs."""

    def load(self, keys: Sequence[str]) -> dict[str, dict]:
        """The stored figures among ``keys`` (absent or unusable entries are left out)."""

    def store(self, figures: Mapping[str, dict], keep: Sequence[str]) -> None:
        """Store ``figures`` by key; entries not in ``keep`` (this run's keys) may be dropped."""


def _feed(h, *parts) -> None:
    for part in parts:
        if isinstance(part, np.ndarray):
            arr = np.ascontiguousarray(part)
            h.update(b"A" + str(arr.dtype).encode() + repr(arr.shape).encode() + arr.tobytes())
        else:  # repr keeps float bits exact and types apart
            h.update(b"V" + type(part).__name__.encode() + repr(part).encode())


def replay_base(
    tables: Mapping[str, pa.Table],
    services: Sequence[str],
    costs: SwitchCosts,
    *,
    window_min: int,
    normal_value: float,
    settings: Mapping[str, object],
) -> hashlib._Hash:
    """The hash of what every incident of a run shares; :func:`replay_key` continues a copy per incident."""
    h = hashlib.sha256(_FORMAT.encode() + _code_digest().encode())
    for name in (*_PROBLEM_TABLES, *(n for n in _STANDBY_TABLES if n in tables)):
        t = tables[name]
        _feed(h, name, t.schema.to_string(), [(c, t.column(c).to_pylist()) for c in t.column_names])
    _feed(h, tuple(services), costs.workload_ids, costs.value_per_hour, costs.switch_cost_s, costs.warmup_s)
    _feed(h, costs.levels, window_min, normal_value, sorted(settings.items()))
    return h


def replay_key(
    base: hashlib._Hash,
    truth: np.ndarray,
    observed: np.ndarray,
    outage_windows: int,
    services: Sequence[str],
    runs: Mapping[str, PolicyRun],
) -> str:
    """The key of one incident: its state rows (true, observed) and each policy's decisions (levels,
    serving order, standby placement held), in order."""
    h = base.copy()
    _feed(h, np.asarray(truth, dtype=np.int8), np.asarray(observed, dtype=np.int8), outage_windows, tuple(services))
    for name, run in runs.items():
        _feed(h, name)
        for d in (run.normal, *run.decisions):
            _feed(h, np.asarray(d.levels, dtype=np.int64), np.asarray(d.priority, dtype=np.int64), d.standby)
    return h.hexdigest()


def with_position(figures: dict, number: int, start: str) -> dict:
    """Stored figures for this run's incident ``number`` starting at ``start`` (neither is in the key)."""
    return {**figures, "number": number, "start": start}


class IncidentReuse:
    """One run's use of a :class:`ReplayStore` (None: replay everything): each incident looked up by its
    key, the replayed ones stored at the end (the store keeps only this run's keys)."""

    def __init__(self, store: ReplayStore | None, base: hashlib._Hash | None) -> None:
        self.store, self.base = store, base
        self.keys: list[str] = []
        self.fresh: dict[str, dict] = {}
        self.reused = 0

    @classmethod
    def begin(cls, store: ReplayStore | None, tables, full, costs: SwitchCosts, normal_value: float, cfg):
        """For a run on the fitted history ``full`` with the backtest config ``cfg``."""
        if store is None:
            return cls(None, None)
        settings = {"seed": cfg.seed, "time_limit_s": cfg.time_limit_s, "levels": cfg.levels}
        base = replay_base(
            tables, full.services, costs, window_min=full.window_min, normal_value=normal_value, settings=settings
        )
        return cls(store, base)

    def lookup(self, full, truth_rows: np.ndarray, seen_rows: np.ndarray, inc, runs: Mapping[str, PolicyRun]):
        """The stored figures of this incident (placed at its number and start), or None: replay it."""
        if self.store is None:
            return None
        self.keys.append(replay_key(self.base, truth_rows, seen_rows, inc.outage_windows, inc.services, runs))
        stored = self.store.load(self.keys[-1:]).get(self.keys[-1])
        if stored is None:
            return None
        self.reused += 1
        start = full.start + pd.Timedelta(minutes=inc.start_window * full.window_min)
        return with_position(stored, inc.number, start.isoformat())

    def add(self, figures: dict) -> None:
        """The figures of the incident just looked up and replayed."""
        if self.store is not None:
            self.fresh[self.keys[-1]] = figures

    def finish(self) -> None:
        if self.store is not None:
            self.store.store(self.fresh, self.keys)
