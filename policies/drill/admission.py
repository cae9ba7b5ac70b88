"""The four admission rules a drill compares, each a plan for the observed state.

* ``keep-all``: no policy; admit everything, always.
* ``tiers``: static criticality tiers (the bundle's ``tiers.json``); while anything is observed
  down or degraded, admit tiers 0..``keep_tier`` and shed the rest; blind to which dependency failed.
* ``greedy``: the client's live greedy rule on the observed state (``fallback.json``).
* ``published``: ``PolicyClient.decide`` on the published bundle (passed in as a callable so this
  module stays free of I/O).

An invoice is admitted when its draw is below its workload's admit share, so a 50 % share admits
the same half of the invoices in every replay.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from policies.drill.load import unit_draw
from qres_client.greedy import RuntimeGreedy

__all__ = ["POLICIES", "Plan", "AdmissionRule", "KeepAll", "StaticTiers", "LiveGreedy", "Published", "admitted"]

POLICIES = ("keep-all", "tiers", "greedy", "published")
NORMAL = "normal"


class Plan(tuple):
    """(scenario key the rule answered with, admit share by workload)."""

    @property
    def key(self) -> str:
        return self[0]

    @property
    def admit(self) -> dict[str, float]:
        return self[1]


def _key(down: frozenset[str], degraded: frozenset[str]) -> str:
    if not down and not degraded:
        return NORMAL
    return "+".join(sorted(down)) + ("~" + "+".join(sorted(degraded)) if degraded else "")


class AdmissionRule:
    name = "?"

    def __init__(self, workloads: Iterable[str]) -> None:
        self.workloads = tuple(workloads)

    def plan(self, down: frozenset[str], degraded: frozenset[str]) -> Plan:
        raise NotImplementedError


class KeepAll(AdmissionRule):
    name = "keep-all"

    def plan(self, down, degraded) -> Plan:
        return Plan((NORMAL, dict.fromkeys(self.workloads, 1.0)))


class StaticTiers(AdmissionRule):
    name = "tiers"

    def __init__(self, workloads: Iterable[str], tiers_doc: Mapping, keep_tier: int = 1) -> None:
        super().__init__(workloads)
        tiers = {w["workload_id"]: int(w["tier"]) for w in tiers_doc["workloads"]}
        self.tier = {w: tiers.get(w, 0) for w in self.workloads}  # unknown workloads: never shed
        self.keep_tier = keep_tier

    def plan(self, down, degraded) -> Plan:
        if not down and not degraded:
            return Plan((NORMAL, dict.fromkeys(self.workloads, 1.0)))
        return Plan(
            (f"tiers<={self.keep_tier}", {w: 1.0 if t <= self.keep_tier else 0.0 for w, t in self.tier.items()})
        )


class LiveGreedy(AdmissionRule):
    name = "greedy"

    def __init__(self, workloads: Iterable[str], greedy: RuntimeGreedy) -> None:
        super().__init__(workloads)
        self.greedy = greedy

    def plan(self, down, degraded) -> Plan:
        shares = {w: a for w, a, _ in self.greedy.plan(frozenset(down), frozenset(degraded))}
        return Plan((_key(down, degraded), {w: shares.get(w, 1.0) for w in self.workloads}))


class Published(AdmissionRule):
    name = "published"

    def __init__(self, workloads: Iterable[str], decide: Callable) -> None:
        super().__init__(workloads)
        self.decide = decide  # decide(down=..., degraded=...) -> qres_client Decision

    def plan(self, down, degraded) -> Plan:
        d = self.decide(down=frozenset(down), degraded=frozenset(degraded))
        shares = {a.workload_id: a.admit for a in d.actions}
        return Plan((d.scenario, {w: shares.get(w, 1.0) for w in self.workloads}))


def admitted(plan: Plan, invoice_id: str, workload_id: str) -> bool:
    """Admit when the invoice's fixed draw falls under its workload's share."""
    return unit_draw("admit", invoice_id) < plan.admit.get(workload_id, 1.0)
