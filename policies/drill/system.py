"""The worked example's shape: which bundle service each stand-in plays, and the invoice mix.

Why a table: a team pointing ``qres drill`` at its own staging service changes these names
(``--roles``), not code; every other drill module reads them from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ROLES", "Priority", "DrillSystem", "DEFAULT_SYSTEM", "parse_roles"]

# Dependencies of the invoice-processing service, by role. The service calls validation
# (falls back to a local model), compute (falls back to the standby site) and payment.
ROLES = ("validation", "payment", "compute", "standby")


@dataclass(frozen=True)
class Priority:
    name: str
    share: float  # of invoices
    workload_id: str  # the bundle workload whose admit share applies
    sla_s: float  # an invoice later than this (or not processed) misses its SLA
    value_median: float  # invoice value, lognormal around this
    value_sigma: float


@dataclass(frozen=True)
class DrillSystem:
    roles: dict[str, str] = field(
        default_factory=lambda: {
            "validation": "saas-invoice-validation",
            "payment": "saas-payments",
            "compute": "region-eu-west",
            "standby": "region-us-east",
        }
    )
    priorities: tuple[Priority, ...] = (
        Priority("P1", 0.10, "wl-checkout", 1.0, 5000.0, 0.8),
        Priority("P2", 0.20, "wl-billing", 2.0, 1200.0, 0.7),
        Priority("P3", 0.40, "wl-invoice-processing", 5.0, 300.0, 0.6),
        Priority("P4", 0.30, "wl-invoice-processing-stream", 10.0, 60.0, 0.5),
    )
    local_accuracy: float = 0.9  # the local validation model: 1 in 10 invoices is mis-validated (value lost)

    def service_of(self, role: str) -> str:
        return self.roles[role]

    def role_of(self, service_id: str) -> str | None:
        return next((r for r, s in self.roles.items() if s == service_id), None)

    @property
    def workloads(self) -> tuple[str, ...]:
        return tuple(p.workload_id for p in self.priorities)

    def priority(self, name: str) -> Priority:
        return next(p for p in self.priorities if p.name == name)


DEFAULT_SYSTEM = DrillSystem()


def parse_roles(text: str, base: DrillSystem = DEFAULT_SYSTEM) -> DrillSystem:
    """``validation=saas-x,compute=region-y`` -> a system with those bundle names for the roles."""
    roles = dict(base.roles)
    for part in filter(None, (p.strip() for p in text.split(","))):
        role, sep, service = part.partition("=")
        if not sep or role not in ROLES or not service:
            raise ValueError(f"--roles takes role=service_id pairs with roles from {', '.join(ROLES)}; got {part!r}")
        roles[role] = service
    return DrillSystem(roles=roles, priorities=base.priorities, local_accuracy=base.local_accuracy)
