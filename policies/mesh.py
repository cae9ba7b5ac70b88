"""Service-mesh documents from published decisions: Envoy EDS, Istio DestinationRule, InferenceObjective.

Built from the JSON the families already publish (a routing scenario of ``policy.json`` and the
``tiers.json`` document), so this module imports no policy family. Every document is checked in
the tests against the real definitions: Envoy's own protobufs (``xds-protos``,
``ClusterLoadAssignment`` parsed strictly) and the published CRD schemas (Istio's
``DestinationRule``; Gateway API Inference Extension's ``InferenceObjective``, v1alpha2).

- :func:`envoy_cluster_load_assignments`: one ``ClusterLoadAssignment`` per service of a routing
  scenario; one locality per endpoint region; an endpoint the plan gives weight 0 is kept but
  marked ``UNHEALTHY`` (Envoy requires ``load_balancing_weight`` >= 1, so it is left unset).
- :func:`istio_destination_rules`: one ``DestinationRule`` per service with
  ``trafficPolicy.loadBalancer.localityLbSetting.distribute`` from the scenario's plan.
- :func:`inference_objectives`: one ``InferenceObjective`` per workload of the tier assignment;
  its integer ``priority`` is the tier's 0..100 priority (higher = served first, shed later).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = [
    "ISTIO_API_VERSION",
    "INFERENCE_API_VERSION",
    "envoy_cluster_load_assignments",
    "istio_destination_rules",
    "inference_objectives",
    "k8s_name",
]

ISTIO_API_VERSION = "networking.istio.io/v1"
INFERENCE_API_VERSION = "inference.networking.x-k8s.io/v1alpha2"
_NOT_DNS = re.compile(r"[^a-z0-9-]+")


def k8s_name(text: str) -> str:
    """A DNS-1123 label from any id (lowercase, '-' for anything else, at most 63 characters)."""
    name = _NOT_DNS.sub("-", text.lower()).strip("-")[:63].strip("-")
    return name or "x"


def envoy_cluster_load_assignments(
    scenario: Mapping, *, address_template: str = "{service}.{locality}.svc.cluster.local", port: int = 80
) -> list[dict]:
    """EDS documents (proto3 JSON of ``envoy.config.endpoint.v3.ClusterLoadAssignment``) per service."""
    by_service: dict[str, dict[str, list[dict]]] = {}
    for a in sorted(scenario["actions"], key=lambda a: (a["service_id"], a["locality"], a["endpoint_id"])):
        lb = {
            "endpoint": {
                "address": {
                    "socket_address": {
                        "address": address_template.format(
                            service=k8s_name(a["service_id"]), locality=k8s_name(a["locality"])
                        ),
                        "port_value": port,
                    }
                },
                "hostname": a["endpoint_id"],
            },
            "health_status": "HEALTHY" if a["envoy_weight"] > 0 else "UNHEALTHY",
        }
        if a["envoy_weight"] > 0:
            lb["load_balancing_weight"] = int(a["envoy_weight"])
        by_service.setdefault(a["service_id"], {}).setdefault(a["locality"], []).append(lb)
    out = []
    for service, localities in by_service.items():
        endpoints = []
        for locality, lbs in localities.items():
            entry = {"locality": {"region": locality}, "lb_endpoints": lbs}
            weight = sum(lb.get("load_balancing_weight", 0) for lb in lbs)
            if weight > 0:
                entry["load_balancing_weight"] = weight
            endpoints.append(entry)
        out.append({"cluster_name": service, "endpoints": endpoints})
    return out


def istio_destination_rules(scenario: Mapping, *, namespace: str = "default") -> list[dict]:
    """One ``DestinationRule`` per service, distributing traffic across localities as planned."""
    rules = []
    for d in scenario.get("istio_distribute", ()):
        to = {k: int(v) for k, v in d["to"].items()}
        rules.append(
            {
                "apiVersion": ISTIO_API_VERSION,
                "kind": "DestinationRule",
                "metadata": {
                    "name": k8s_name(f"qres-{d['service']}"),
                    "namespace": namespace,
                    "annotations": {"qresilience.io/scenario": str(scenario["key"])},
                },
                "spec": {
                    "host": d["service"],
                    "trafficPolicy": {
                        "loadBalancer": {
                            "simple": "ROUND_ROBIN",
                            "localityLbSetting": {"enabled": True, "distribute": [{"from": d["from"], "to": to}]},
                        },
                        # Istio applies locality load balancing only with outlier detection configured.
                        "outlierDetection": {"consecutive5xxErrors": 5, "interval": "10s", "baseEjectionTime": "30s"},
                    },
                },
            }
        )
    return rules


def inference_objectives(tiers: Mapping, *, pool: str, namespace: str = "default") -> list[dict]:
    """One ``InferenceObjective`` per workload: ``spec.priority`` from its tier (integer, higher first)."""
    out = []
    for w in tiers["workloads"]:
        priority = w["priority"]
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise ValueError(f"tiers document: workload {w['workload_id']!r} has a non-integer priority {priority!r}")
        out.append(
            {
                "apiVersion": INFERENCE_API_VERSION,
                "kind": "InferenceObjective",
                "metadata": {
                    "name": k8s_name(w["workload_id"]),
                    "namespace": namespace,
                    "labels": {"qresilience.io/tier": str(w["tier"])},
                },
                "spec": {"poolRef": {"name": pool}, "priority": priority},
            }
        )
    return out
