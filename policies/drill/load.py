"""The invoice stream a drill sends: same seed, same invoices at the same offsets.

Poisson arrivals; priorities drawn from the system's mix; values lognormal around each
priority's median (a few large P1 invoices carry most of the value, as in real ledgers).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np

from policies.drill.system import DrillSystem

__all__ = ["Invoice", "invoice_stream", "unit_draw"]


@dataclass(frozen=True)
class Invoice:
    invoice_id: str
    at_s: float  # offset from the start of the load
    priority: str
    workload_id: str
    value: float
    sla_s: float

    def as_dict(self) -> dict:
        return asdict(self)


def invoice_stream(seed: int, window_s: float, rate_per_s: float, system: DrillSystem) -> list[Invoice]:
    """Invoices arriving over ``window_s`` seconds at ``rate_per_s`` on average."""
    if rate_per_s <= 0 or window_s <= 0:
        raise ValueError(f"rate and window must be > 0; got {rate_per_s}/s over {window_s} s")
    rng = np.random.default_rng([seed, 1])
    n_max = int(rate_per_s * window_s * 2 + 20)
    times = np.cumsum(rng.exponential(1.0 / rate_per_s, n_max))
    times = times[times < window_s]
    shares = np.array([p.share for p in system.priorities])
    picks = rng.choice(len(system.priorities), size=len(times), p=shares / shares.sum())
    noise = rng.standard_normal(len(times))
    out = []
    for i, (t, k, z) in enumerate(zip(times, picks, noise)):
        p = system.priorities[int(k)]
        value = round(float(p.value_median * np.exp(p.value_sigma * z)), 2)
        out.append(Invoice(f"inv-{seed}-{i:05d}", round(float(t), 4), p.name, p.workload_id, value, p.sla_s))
    return out


def unit_draw(*parts: object) -> float:
    """A uniform number in [0, 1) fixed by its arguments (admission and local-model draws)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64
