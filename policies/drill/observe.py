"""The drilled service's own health checks: probes in, an observed down/degraded set out.

Hysteresis as in the failure model's flap filter: a dependency changes state only after
``windows`` probes in a row agree, so a single lost probe does not flip the policy.
"""

from __future__ import annotations

__all__ = ["Observer", "probe_state"]


def probe_state(ok: bool, latency_s: float, slow_s: float) -> str:
    """One probe's verdict: down (failed), degraded (answered slowly) or up."""
    return "down" if not ok else "degraded" if latency_s > slow_s else "up"


class Observer:
    """Per dependency, the state accepted after ``windows`` agreeing probes."""

    def __init__(self, services: list[str] | tuple[str, ...], windows: int = 2) -> None:
        if windows < 1:
            raise ValueError(f"windows must be >= 1, got {windows}")
        self.windows = windows
        self.state = dict.fromkeys(services, "up")
        self._pending: dict[str, tuple[str, int]] = {}

    def update(self, service: str, verdict: str) -> bool:
        """Feed one probe verdict; True when the accepted state changed."""
        if verdict == self.state[service]:
            self._pending.pop(service, None)
            return False
        seen, n = self._pending.get(service, (verdict, 0))
        n = n + 1 if seen == verdict else 1
        if n >= self.windows:
            self.state[service] = verdict
            self._pending.pop(service, None)
            return True
        self._pending[service] = (verdict, n)
        return False

    @property
    def down(self) -> frozenset[str]:
        return frozenset(s for s, v in self.state.items() if v == "down")

    @property
    def degraded(self) -> frozenset[str]:
        return frozenset(s for s, v in self.state.items() if v == "degraded")
