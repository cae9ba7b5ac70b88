"""The sample fleet: who exists, where they run, what they depend on.

Why: the classic 40-service fleet (3 regions, 8 SaaS, 2 edges, 27 named internal services) carries
the stories the tests check (checkout needs payments, invoicing needs the validation SaaS); larger
fleets keep that core and grow every kind in proportion, so a 1,000-service fleet has the same
shape: regions sharing one compute pool, SaaS with hard and soft dependents, edges, and internal
services mostly active-active across regions with some pinned to one. With ``services=40`` every
random draw is the classic one, so the default sample keeps its bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CLASSIC_SERVICES", "Topology", "build_topology", "fleet_kinds"]

CLASSIC_SERVICES = 40
REGIONS = {"region-eu-west": 400.0, "region-us-east": 400.0, "region-ap-south": 200.0}
EXTRA_REGIONS = (
    "region-us-west",
    "region-eu-central",
    "region-ap-east",
    "region-sa-east",
    "region-eu-north",
    "region-us-central",
    "region-ap-southeast",
    "region-me-central",
    "region-ca-central",
    "region-af-south",
)
EXTRA_REGION_CAPACITY = 200.0
SAAS_TIERS = {
    "saas-payments": 0,
    "saas-identity": 0,
    "saas-invoice-validation": 1,
    "saas-llm-api": 1,
    "saas-email": 2,
    "saas-search": 2,
    "saas-sms": 2,
    "saas-maps": 3,
}
EDGES = ("edge-cdn", "edge-gateway")
INTERNAL = (
    "svc-checkout",
    "svc-cart",
    "svc-orders",
    "svc-invoicing",
    "svc-billing",
    "svc-ledger",
    "svc-payouts",
    "svc-catalog",
    "svc-inventory",
    "svc-pricing",
    "svc-search",
    "svc-recommendations",
    "svc-notifications",
    "svc-accounts",
    "svc-auth",
    "svc-shipping",
    "svc-returns",
    "svc-reporting",
    "svc-analytics",
    "svc-fraud",
    "svc-support",
    "svc-assistant",
    "svc-documents",
    "svc-geo",
    "svc-media",
    "svc-audit",
    "svc-scheduler",
)
# The dependencies every seed shares, so the stories (checkout needs payments, invoicing needs
# the validation SaaS) hold; the seed adds the rest.
STORY_DEPS = (
    ("svc-checkout", "saas-payments", True),
    ("svc-orders", "saas-payments", False),
    ("svc-invoicing", "saas-invoice-validation", True),
    ("svc-ledger", "saas-invoice-validation", False),
    ("svc-notifications", "saas-email", True),
    ("svc-notifications", "saas-sms", False),
    ("svc-assistant", "saas-llm-api", True),
    ("svc-auth", "saas-identity", True),
    ("svc-shipping", "saas-maps", False),
    ("svc-catalog", "saas-search", False),
)
TIER0_INTERNAL = ("svc-checkout", "svc-auth")
SINGLE_REGION_SHARE = 0.2  # internal services pinned to their home region


@dataclass(frozen=True)
class Topology:
    ids: tuple[str, ...]  # sorted service ids
    kind: dict[str, str]
    tier: dict[str, int]
    capacity: dict[str, float]
    region: dict[str, str | None]
    deps: dict[tuple[str, str], bool]  # (service_id, depends_on) -> hard
    regions: tuple[str, ...]  # in creation order (classic first)
    saas: tuple[str, ...]
    edges_: tuple[str, ...]
    internal: tuple[str, ...]

    def edges(self) -> list[tuple[str, str, bool]]:
        return [(s, d, h) for (s, d), h in sorted(self.deps.items())]

    @property
    def pool(self) -> float:
        """The shared compute pool: every region's capacity."""
        return sum(self.capacity[r] for r in self.regions)


def fleet_kinds(services: int) -> dict[str, tuple[str, ...]]:
    """Names per kind for a fleet of ``services``: the classic 40, plus every kind grown in proportion."""
    if not isinstance(services, int) or services < CLASSIC_SERVICES:
        raise ValueError(f"services must be an integer >= {CLASSIC_SERVICES}, got {services!r}")
    extra = services - CLASSIC_SERVICES
    n_regions = min(3 + extra // 150, len(REGIONS) + len(EXTRA_REGIONS))
    regions = (*REGIONS, *EXTRA_REGIONS[: n_regions - len(REGIONS)])
    saas = (*SAAS_TIERS, *(f"saas-ext-{i:03d}" for i in range(1, extra // 25 + 1)))
    edges = (*EDGES, *(f"edge-ext-{i:03d}" for i in range(1, extra // 100 + 1)))
    n_internal = services - len(regions) - len(saas) - len(edges)
    internal = (*INTERNAL, *(f"svc-ext-{i:04d}" for i in range(1, n_internal - len(INTERNAL) + 1)))
    return {"region": regions, "saas": saas, "edge": edges, "internal": internal}


def build_topology(rng: np.random.Generator, services: int = CLASSIC_SERVICES) -> Topology:
    """Services and an acyclic dependency graph; hard internal edges stay within a region."""
    names = fleet_kinds(services)
    regions, saas, edges, internal = (list(names[k]) for k in ("region", "saas", "edge", "internal"))
    kind = {s: k for k, ids in names.items() for s in ids}
    region_cap = {r: REGIONS.get(r, EXTRA_REGION_CAPACITY) for r in regions}
    saas_tier = {s: SAAS_TIERS.get(s, i % 4) for i, s in enumerate(saas)}
    tier = {**dict.fromkeys(regions, 0), **saas_tier, **dict.fromkeys(edges, 0)}
    tier |= {s: int(t) for s, t in zip(internal, rng.choice(4, len(internal), p=[0.15, 0.3, 0.3, 0.25]))}
    tier |= dict.fromkeys(TIER0_INTERNAL, 0)
    # At least three services per region, the rest in proportion to region capacity.
    share = np.array(list(region_cap.values())) / sum(region_cap.values())
    homes = [r for r in regions for _ in range(3)]
    homes += list(rng.choice(regions, len(internal) - len(homes), p=share))
    homes = [str(h) for h in rng.permutation(homes)] + [str(h) for h in rng.choice(regions, len(edges), p=share)]
    region = {**dict.fromkeys(regions), **dict.fromkeys(saas), **dict(zip(internal + edges, homes))}
    capacity = dict(region_cap)
    for s in (*saas, *edges, *internal):
        capacity[s] = float(np.round(rng.uniform(20, 200) * (5 if kind[s] == "saas" else 1), 1))
    deps: dict[tuple[str, str], bool] = {(s, d): h for s, d, h in STORY_DEPS}
    order = [str(s) for s in rng.permutation(internal)]  # topological order of internal services
    for i, s in enumerate(order):
        # Most services run active-active across regions (soft on their home region: a
        # region outage degrades them and shrinks the shared compute pool); some are
        # pinned to one region (hard) and go down with it.
        deps[(s, region[s])] = bool(rng.random() < SINGLE_REGION_SHARE)
        for d in rng.choice(saas, int(rng.integers(1, 3)), replace=False):
            deps.setdefault((s, str(d)), bool(rng.random() < 0.35))
        if i:
            for d in rng.choice(order[:i], min(i, int(rng.integers(0, 4))), replace=False):
                same = region[str(d)] == region[s]
                deps.setdefault((s, str(d)), bool(same and rng.random() < 0.5))
    for e in edges:
        deps[(e, region[e])] = True
        local = [s for s in order if region[s] == region[e]]
        deps[(e, str(rng.choice(local)))] = True
        for d in rng.choice(order, 2, replace=False):
            deps.setdefault((e, str(d)), False)
    return Topology(
        tuple(sorted(kind)),
        kind,
        tier,
        capacity,
        region,
        deps,
        tuple(regions),
        tuple(saas),
        tuple(edges),
        tuple(internal),
    )
