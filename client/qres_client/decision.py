"""What ``decide()`` answers: a decision of one policy version, as ranked actions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from qres_client.errors import QresError
from qres_client.greedy import GREEDY_KEY

__all__ = ["Action", "Decision", "BundleNotLoadedError", "NO_EXTRAS"]

NO_EXTRAS: Mapping[str, Any] = MappingProxyType({})


class BundleNotLoadedError(QresError, LookupError):
    """decide() was asked about a policy for which no verified bundle is loaded."""


@dataclass(frozen=True)
class Action:
    workload_id: str  # the subject of the action (a candidate or an endpoint in other families)
    admit: float  # share admitted, 0..1
    rank: int  # 1 = admit first, shed last
    # Columns after the shedding ones (other policy families), by name; compared, not hashed.
    extras: Mapping[str, Any] = field(default_factory=lambda: NO_EXTRAS, hash=False)


@dataclass(frozen=True)
class Decision:
    policy: str
    version: str
    scenario: str  # key of the scenario whose plan this is
    exact: bool  # False when a covering scenario (or the fallback) answered
    actions: tuple[Action, ...]  # ordered by rank

    def as_dict(self) -> dict[str, Any]:
        """The JSON document of a decision (``qres decide --json`` prints exactly this)."""
        return {
            "policy": self.policy,
            "version": self.version,
            "scenario": self.scenario,
            "exact": self.exact,
            "actions": [
                {"workload_id": a.workload_id, "admit": a.admit, "rank": a.rank, **dict(a.extras)} for a in self.actions
            ],
        }

    @property
    def how(self) -> str:
        """How the scenario was found: exact, planned for the observed state, or closest covering."""
        if self.exact:
            return "exact"
        return "planned for the observed state" if self.scenario == GREEDY_KEY else "closest covering"
