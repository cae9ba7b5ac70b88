"""How fresh each loaded policy is: what :meth:`PolicyClient.status` reports (split from client.py)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PolicyStatus"]


@dataclass(frozen=True)
class PolicyStatus:
    """How fresh a policy's loaded bundle is, for health checks and dashboards."""

    policy: str
    version: str | None  # loaded version (None: nothing verified yet)
    signed: bool  # False only when allow_unsigned let an unsigned bundle in
    origin: str | None  # "store" or "cache": where the loaded bytes came from
    confirmed_at: float | None  # unix time the store last confirmed this is its LATEST
    stale_s: float | None  # seconds since then (None: never confirmed, e.g. started from cache)
    last_error: str | None  # why the last refresh of this policy did not move forward


class State:
    __slots__ = ("signed", "origin", "confirmed_at", "last_error")

    def __init__(self) -> None:
        self.signed, self.origin, self.confirmed_at, self.last_error = False, None, None, None
