"""Fault timelines: what the injector does to each dependency, second by second, during a drill.

Why here: the timing is domain (the failure model's recovery rates set how long each outage lasts;
the seed draws the lengths, the spread between co-failing dependencies and the flaps), and it must
be the same for every policy in a drill and for every replay with the same seed.

Shape of one dependency's outage (all relative to the start of the load):

* onset at 25 % of the window (plus a small seeded spread when several dependencies fail);
* 0-2 flaps first (0.4 s down, 0.4 s up), as a dependency often does on its way down;
* the sustained fault: ``refuse`` (connections reset) for the compute pool and standby site,
  ``timeout`` (accepted, never answered) for the SaaS APIs; degraded dependencies get ``partial``;
* a partial recovery after it (30 % errors and 150 ms added latency for 30 % of its length).

The sustained length is an exponential draw with the dependency's mean outage ``1 / mu`` from
``health.json``, compressed so that the longest mean fills 40 % of the window (``--for`` fixes it).
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass

import numpy as np

from policies.drill.system import DrillSystem

__all__ = ["MODES", "Segment", "FaultPlan", "plan_faults", "active_segment"]

MODES = ("refuse", "timeout", "latency", "errors", "partial")
ONSET_SHARE, OUTAGE_SHARE = 0.25, 0.4
FLAP_S = 0.4
PARTIAL_SHARE, PARTIAL_ERRORS, PARTIAL_LATENCY_MS = 0.3, 0.3, 150.0


@dataclass(frozen=True)
class Segment:
    role: str
    start_s: float
    end_s: float
    mode: str
    error_rate: float = 0.0
    latency_ms: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"fault mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        if not 0 <= self.start_s < self.end_s:
            raise ValueError(f"a fault segment needs 0 <= start < end; got {self.start_s}..{self.end_s}")


@dataclass(frozen=True)
class FaultPlan:
    source: str  # "scenario:<key>", "incident:<id>" or "what-if"
    down: tuple[str, ...]  # bundle service ids the plan takes down
    degraded: tuple[str, ...]
    window_s: float  # seconds of load
    segments: tuple[Segment, ...]

    def onset_s(self, role: str | None = None) -> float | None:
        """When the first fault (of ``role``, or of any dependency) starts."""
        starts = [s.start_s for s in self.segments if role is None or s.role == role]
        return min(starts) if starts else None

    def as_dict(self) -> dict:
        return {**asdict(self), "segments": [asdict(s) for s in self.segments]}

    @classmethod
    def from_dict(cls, doc: dict) -> FaultPlan:
        segs = tuple(Segment(**s) for s in doc["segments"])
        return cls(doc["source"], tuple(doc["down"]), tuple(doc["degraded"]), float(doc["window_s"]), segs)


def _mean_outage_min(health: dict, service_id: str) -> float:
    params = health.get("dependencies", {}).get(service_id) or health["default"]
    mu = float(params["recovery_rate_per_min"])
    return 1.0 / mu if mu > 0 else 60.0


def plan_faults(
    down: tuple[str, ...] | list[str],
    degraded: tuple[str, ...] | list[str],
    system: DrillSystem,
    health: dict,
    seed: int,
    window_s: float,
    *,
    source: str,
    fixed_s: float | None = None,
    duration_min: float | None = None,
    flaps: bool = True,
) -> FaultPlan:
    """The fault timeline of one drill (see the module docstring); ValueError if it touches no stand-in.

    ``fixed_s`` fixes the sustained length in drill seconds (a what-if's ``--for``);
    ``duration_min`` replaces the draw by a real outage's length in minutes (an incident), compressed alike.
    """
    hit = sorted({s for s in down if system.role_of(s)})
    slow = sorted({s for s in degraded if system.role_of(s)} - set(hit))
    if not hit and not slow:
        raise ValueError(
            f"{source} takes down {sorted(down) or 'nothing'} and degrades {sorted(degraded) or 'nothing'}: none of them "
            f"is a dependency of the drill's service ({', '.join(f'{r}={s}' for r, s in system.roles.items())})"
        )
    rng = np.random.default_rng([seed, zlib.crc32(source.encode())])
    means = {s: _mean_outage_min(health, s) for s in hit + slow}
    scale = OUTAGE_SHARE * window_s / max(means.values())
    segments: list[Segment] = []
    for service in hit + slow:
        role = system.role_of(service)
        start = ONSET_SHARE * window_s + (rng.uniform(0, 0.05 * window_s) if len(means) > 1 else 0.0)
        draw = (rng.exponential(means[service]) if duration_min is None else duration_min) * scale
        length = fixed_s if fixed_s is not None else float(np.clip(draw, 0.15 * window_s, 0.5 * window_s))
        n_flaps = int(rng.integers(0, 3)) if flaps and service in hit else 0
        kind = "partial" if service in slow else "refuse" if role in ("compute", "standby") else "timeout"
        t = start
        for _ in range(n_flaps):
            segments.append(Segment(role, round(t, 3), round(t + FLAP_S, 3), kind))
            t += 2 * FLAP_S
        if kind == "partial":
            segments.append(Segment(role, round(t, 3), round(t + length, 3), kind, PARTIAL_ERRORS, PARTIAL_LATENCY_MS))
            continue
        segments.append(Segment(role, round(t, 3), round(t + length, 3), kind))
        end = t + length
        tail = PARTIAL_SHARE * length
        segments.append(
            Segment(role, round(end, 3), round(end + tail, 3), "partial", PARTIAL_ERRORS, PARTIAL_LATENCY_MS)
        )
    last = max(s.end_s for s in segments)
    window = max(float(window_s), round(last + 0.15 * window_s, 3))  # the recovery is watched too
    segments.sort(key=lambda s: (s.start_s, s.role))
    return FaultPlan(source, tuple(hit), tuple(slow), window, tuple(segments))


def active_segment(plan_segments: tuple[Segment, ...] | list[Segment], role: str, t: float) -> Segment | None:
    """The fault on ``role`` at ``t`` seconds into the load (None: pass traffic through)."""
    for s in plan_segments:
        if s.role == role and s.start_s <= t < s.end_s:
            return s
    return None
