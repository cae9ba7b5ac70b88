"""Runtime health score: the probability that a dependency is healthy ``horizon`` minutes from now.

Standard library only, so a runtime service computes it next to ``qres_client.client`` from the
bundle's ``health.json`` and what it observes, without numpy.

The model is the two-state continuous-time Markov chain the failure model fits per dependency:
healthy (up or degraded) -> down at the failure rate ``lambda``, down -> healthy at the recovery
rate ``mu`` (both per minute). With ``pi = mu / (lambda + mu)`` the long-run healthy share and
``s = lambda + mu``::

    P(healthy at t + h | healthy at t) = pi + (1 - pi) * exp(-s h)
    P(healthy at t + h | down at t)    = pi * (1 - exp(-s h))

When the current state is itself uncertain (noisy probes), pass ``p_down_now``, the runtime's
belief that the dependency is down now; the score is the mixture of the two lines. The chain is
memoryless, so the time already spent in the current state does not change the score.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping

from qres_client.bundle import HEALTH_FILE

__all__ = ["HEALTH_FILE", "HEALTH_SCHEMA", "build_health_document", "read_health_document", "health_score"]

HEALTH_SCHEMA = 1


def build_health_document(rows: Iterable[Mapping], *, horizon_min: float, window_min: int) -> dict:
    """The ``health.json`` content from per-dependency rows (``service_id``,
    ``failure_rate_per_min``, ``recovery_rate_per_min``, ``p_down``).

    ``default`` holds the median rates, for services the bundle does not name.
    """
    if not horizon_min > 0:
        raise ValueError(f"horizon_min must be > 0 minutes, got {horizon_min!r}")
    deps = {}
    for r in rows:
        deps[str(r["service_id"])] = {
            "failure_rate_per_min": _num(r["failure_rate_per_min"]),
            "recovery_rate_per_min": _num(r["recovery_rate_per_min"]),
            "p_down": _num(r["p_down"]),
        }
    if not deps:
        raise ValueError("no dependencies to describe: the failure model has no services")

    def median(key: str) -> float:
        values = sorted(d[key] for d in deps.values())
        mid = len(values) // 2
        return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2

    return {
        "schema": HEALTH_SCHEMA,
        "model": "two-state continuous-time Markov chain (healthy = up or degraded)",
        "horizon_min": float(horizon_min),
        "window_min": int(window_min),
        "default": {
            "failure_rate_per_min": median("failure_rate_per_min"),
            "recovery_rate_per_min": median("recovery_rate_per_min"),
        },
        "dependencies": dict(sorted(deps.items())),
    }


def read_health_document(data: bytes | str) -> dict:
    """Parse and check a ``health.json``; ValueError naming the problem when it is malformed."""
    doc = json.loads(data)
    if not isinstance(doc, dict) or doc.get("schema") != HEALTH_SCHEMA:
        raise ValueError(
            f"health.json: expected schema {HEALTH_SCHEMA}, got {doc.get('schema') if isinstance(doc, dict) else doc!r}"
        )
    for name, params in {"default": doc.get("default"), **doc.get("dependencies", {})}.items():
        for key in ("failure_rate_per_min", "recovery_rate_per_min"):
            value = (params or {}).get(key)
            if not isinstance(value, (int, float)) or not value >= 0 or math.isinf(value):
                raise ValueError(f"health.json: {name}.{key} must be a finite number >= 0, got {value!r}")
    return doc


def health_score(
    document: Mapping,
    service_id: str,
    state: str = "up",
    *,
    horizon_min: float | None = None,
    p_down_now: float | None = None,
) -> float:
    """Probability in [0, 1] that ``service_id`` is healthy ``horizon_min`` from now.

    ``state`` is what the service sees now (``up``, ``degraded`` or ``down``); ``p_down_now``, when
    given, replaces it with a belief. ``horizon_min`` defaults to the document's horizon.
    """
    if state not in ("up", "degraded", "down"):
        raise ValueError(f"state must be up, degraded or down; got {state!r}")
    params = document.get("dependencies", {}).get(service_id) or document["default"]
    lam, mu = float(params["failure_rate_per_min"]), float(params["recovery_rate_per_min"])
    h = float(document["horizon_min"] if horizon_min is None else horizon_min)
    if h < 0:
        raise ValueError(f"horizon_min must be >= 0, got {h!r}")
    q = (1.0 if state == "down" else 0.0) if p_down_now is None else float(p_down_now)
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"p_down_now must be in [0, 1], got {p_down_now!r}")
    s = lam + mu
    if s <= 0:  # never fails and never recovers: the state persists
        return 1.0 - q
    pi = mu / s
    decay = math.exp(-s * h)
    from_up = pi + (1.0 - pi) * decay
    from_down = pi * (1.0 - decay)
    return min(1.0, max(0.0, (1.0 - q) * from_up + q * from_down))


def _num(value) -> float:
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"health parameters must be finite, got {value!r}")
    return float(f"{x:.12g}")
