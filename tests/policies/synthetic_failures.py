"""Synthetic telemetry from known parameters, for the failure model's calibration tests.

Each dependency is an alternating up/down process with exponential up times (failure rate
``lam`` per minute) and down times (recovery rate ``mu``), started in its stationary state, so
the true long-run P(down) is ``lam / (lam + mu)``. Planted pairs share a common shock process
that takes both down at once. Sampled once per minute: vectorized, no loop per minute.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from policies.schema import DEPENDENCIES, HEALTH_CHECKS, SERVICES

__all__ = ["simulate_down", "checks_table", "service_tables", "T0"]

T0 = pd.Timestamp("2026-03-02 00:00", tz="UTC")


def _alternating(rng: np.random.Generator, minutes: int, lam: float, mu: float, start_down: bool) -> np.ndarray:
    """Down indicator at minutes 0..minutes-1 of one alternating exponential process."""
    n = int(minutes * lam * 3 + 50)  # comfortably more cycles than needed
    up, down = rng.exponential(1 / lam, n), rng.exponential(1 / mu, n)
    first, second = (down, up) if start_down else (up, down)
    bounds = np.cumsum(np.column_stack([first, second]).ravel())
    while bounds[-1] < minutes:  # pragma: no cover - the margin above makes this rare
        bounds = np.r_[
            bounds, bounds[-1] + np.cumsum(rng.exponential(1 / np.array([lam, mu] if start_down else [mu, lam]), 2 * n))
        ]
    segment = np.searchsorted(bounds, np.arange(minutes) + 0.5, side="right")
    return (segment % 2 == 0) == start_down


def simulate_down(
    rng: np.random.Generator,
    minutes: int,
    lam: np.ndarray,
    mu: np.ndarray,
    pairs: tuple[tuple[int, int], ...] = (),
    shock_rate: float = 0.0,
    shock_mu: float = 1 / 40,
) -> np.ndarray:
    """``[minute, dependency]`` down indicator; planted ``pairs`` also go down together in shocks."""
    pi = lam / (lam + mu)
    down = np.column_stack([_alternating(rng, minutes, la, m, rng.random() < p) for la, m, p in zip(lam, mu, pi)])
    for a, b in pairs:
        shock = _alternating(rng, minutes, shock_rate, shock_mu, False)
        down[:, a] |= shock
        down[:, b] |= shock
    return down


def checks_table(down: np.ndarray, names: list[str], *, probes: int = 1, flaps: np.ndarray | None = None) -> pa.Table:
    """One check per minute, dependency and probe: ``down`` or ``up``. ``flaps[minute, dep, probe]``
    marks extra single-check blips (the check says down while the dependency is up)."""
    minutes, n = down.shape
    status = np.repeat(down[:, :, None], probes, axis=2).astype(np.int8) * 2
    if flaps is not None:
        status = np.where(flaps, 2, status)
    m, d, p = np.meshgrid(np.arange(minutes), np.arange(n), np.arange(probes), indexing="ij")
    ts = (T0.value // 10**6) + m.ravel().astype(np.int64) * 60_000 + p.ravel() * 7_000
    statuses = pa.array(["up", "degraded", "down"])
    return pa.table(
        {
            "ts": pa.array(ts, pa.timestamp("ms", tz="UTC")),
            "service_id": pa.DictionaryArray.from_arrays(pa.array(d.ravel().astype(np.int32)), pa.array(names)).cast(
                pa.string()
            ),
            "probe": pa.DictionaryArray.from_arrays(
                pa.array(p.ravel().astype(np.int32)), pa.array([f"p{i}" for i in range(probes)])
            ).cast(pa.string()),
            "status": pa.DictionaryArray.from_arrays(pa.array(status.ravel().astype(np.int32)), statuses).cast(
                pa.string()
            ),
            "latency_ms": pa.array(np.full(ts.size, 10.0)),
            "error_rate": pa.array(np.zeros(ts.size)),
            "http_code": pa.array(np.full(ts.size, 200, dtype=np.int32)),
        }
    ).cast(HEALTH_CHECKS)


def service_tables(names: list[str], edges: tuple[tuple[str, str, bool], ...] = ()) -> tuple[pa.Table, pa.Table]:
    """``services`` (all SaaS) and ``dependencies`` tables for ``names``."""
    services = pa.Table.from_pylist(
        [{"service_id": s, "kind": "saas", "tier": 1, "capacity": 1.0, "region": None} for s in names], schema=SERVICES
    )
    deps = pa.Table.from_pylist(
        [{"service_id": a, "depends_on": b, "hard": h} for a, b, h in edges], schema=DEPENDENCIES
    )
    return services, deps
