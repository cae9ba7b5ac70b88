"""Mesh exports against the real definitions: Envoy's protobufs and the published CRD schemas.

The CRD schemas are read from /work/shared/schemas (../shared/schemas of a worktree) and never
copied into the repository; unknown fields are refused as ``kubectl --validate=strict`` would.

Envoy's protobufs (``xds-protos``) are installed into a throw-away virtual environment (uv, from
its cache), never into the project's: the xds-protos wheel ships its own copy of
``opentelemetry/proto/**`` that overwrites opentelemetry-proto's files and breaks MLflow.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import yaml

from policies.mesh import envoy_cluster_load_assignments, inference_objectives, istio_destination_rules
from policies.routing.policy import ROUTING, routing_policy_document
from policies.routing.problem import routing_problem_from_dict
from policies.scenarios.scenario_set import Scenario
from policies.solve.portfolio import solve_portfolio
from policies.tiers.policy import TIER_SOLVERS, TierProblem, is_feasible_tiers, tier_objective, tiers_document
from tests.test_client_distribution import _run, _uv

REPO = Path(__file__).resolve().parents[2]
XDS_PROTOS = "xds-protos==1.85.0"  # Envoy's API protos as published on PyPI (with the protobuf they need)
ENVOY_PARSE = """
import json, sys
from envoy.config.endpoint.v3 import endpoint_pb2
from google.protobuf import json_format
out = []
for doc in json.load(open(sys.argv[1])):
    try:
        cla = json_format.Parse(json.dumps(doc), endpoint_pb2.ClusterLoadAssignment())
    except json_format.ParseError as exc:
        out.append({"error": str(exc)})
        continue
    # Round trip through the message: what Envoy reads, with its own field names and enum values.
    out.append(json_format.MessageToDict(cla, preserving_proto_field_name=True))
print(json.dumps(out))
"""
SCHEMAS = Path("/work/shared/schemas")
if not SCHEMAS.is_dir():
    SCHEMAS = REPO.parent / "shared" / "schemas"
ISTIO = SCHEMAS / "istio" / "destinationrules.networking.istio.io.yaml"
INFERENCE = SCHEMAS / "gateway-api-inference-extension" / "inference.networking.x-k8s.io_inferenceobjectives.yaml"


def _strict(schema: dict) -> dict:
    """Refuse fields the schema does not declare (Kubernetes prunes them; strict validation refuses)."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if (
                node.get("type") == "object"
                and "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    return schema


def crd_validator(path: Path, version: str) -> jsonschema.Validator:
    crd = yaml.safe_load(path.read_text())
    (v,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = _strict(v["schema"]["openAPIV3Schema"])
    # apiVersion, kind and metadata are the API server's (TypeMeta, ObjectMeta): checked against the CRD here.
    schema["properties"].update(
        apiVersion={"const": f"{crd['spec']['group']}/{version}"},
        kind={"const": crd["spec"]["names"]["kind"]},
        metadata={"type": "object", "required": ["name"]},
    )
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    return cls(schema)


@pytest.fixture(scope="module")
def routing_scenario() -> dict:
    doc = json.loads((REPO / "data" / "examples" / "routing.json").read_text())
    p = routing_problem_from_dict(doc)
    r = ROUTING.solve(p, seed=3, time_limit_s=2.0)
    s = Scenario(doc["key"], ("region-eu-west",), (), ("region-eu-west",), 0.1, 60.0, "single")
    (scenario,) = routing_policy_document([s], [p], [r], [doc])["scenarios"]
    return scenario


@pytest.fixture(scope="module")
def envoy_python(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("xds")
    _run([_uv(), "venv", "--python", sys.executable, tmp / "venv"], cwd=tmp)
    python = tmp / "venv" / "bin" / "python"
    _run([_uv(), "pip", "install", "--python", python, XDS_PROTOS], cwd=tmp)
    return python


def envoy_parse(python: Path, docs: list[dict], tmp: Path) -> list[dict]:
    (tmp / "docs.json").write_text(json.dumps(docs))
    (tmp / "parse.py").write_text(ENVOY_PARSE)
    return json.loads(_run([python, "-I", tmp / "parse.py", tmp / "docs.json"], cwd=tmp))


def test_envoy_cluster_load_assignments_parse_strictly_with_envoys_protos(routing_scenario, envoy_python, tmp_path):
    docs = envoy_cluster_load_assignments(routing_scenario)
    services = {a["service_id"] for a in routing_scenario["actions"]}
    assert {d["cluster_name"] for d in docs} == services
    typo = copy.deepcopy(docs[0])
    typo["endpoints"][0]["lb_endpoints"][0]["weight"] = 1  # a field Envoy does not have
    parsed = envoy_parse(envoy_python, [*docs, typo], tmp_path)
    assert 'has no field named "weight"' in parsed[-1]["error"]  # the strict parse refuses typos
    for doc, cla in zip(docs, parsed[:-1], strict=True):
        assert "error" not in cla, cla
        assert cla["cluster_name"] == doc["cluster_name"]
        planned = [a["envoy_weight"] for a in routing_scenario["actions"] if a["service_id"] == doc["cluster_name"]]
        endpoints = [lb for e in cla["endpoints"] for lb in e["lb_endpoints"]]
        weights = [lb.get("load_balancing_weight", 0) for lb in endpoints]
        assert sorted(weights) == sorted(planned)
        # Envoy's rule: load_balancing_weight >= 1 when set; an endpoint planned at 0 is UNHEALTHY instead.
        assert all((w >= 1) == (lb["health_status"] == "HEALTHY") for w, lb in zip(weights, endpoints))
        assert all(lb["endpoint"]["address"]["socket_address"]["port_value"] == 80 for lb in endpoints)
        for e in cla["endpoints"]:
            total = sum(lb.get("load_balancing_weight", 0) for lb in e["lb_endpoints"])
            assert e["locality"]["region"] and e.get("load_balancing_weight", 0) == total


def test_istio_destination_rules_validate_against_the_crd(routing_scenario):
    rules = istio_destination_rules(routing_scenario, namespace="prod")
    assert rules and len(rules) == len(routing_scenario["istio_distribute"])
    for version in ("v1", "v1beta1"):
        validator = crd_validator(ISTIO, version)
        for rule in rules:
            rule = {**rule, "apiVersion": f"networking.istio.io/{version}"}
            validator.validate(rule)
            dist = rule["spec"]["trafficPolicy"]["loadBalancer"]["localityLbSetting"]["distribute"]
            assert sum(dist[0]["to"].values()) == 100
    broken = copy.deepcopy(rules[0])
    broken["spec"]["trafficPolicy"]["loadBalancer"]["localityLbSetting"]["distribute"][0]["to"] = {"a/*": "half"}
    assert list(crd_validator(ISTIO, "v1").iter_errors(broken))
    typo = copy.deepcopy(rules[0])
    typo["spec"]["trafficPolicy"]["loadBalancer"]["localityLbSettings"] = {}
    assert list(crd_validator(ISTIO, "v1").iter_errors(typo))


def test_inference_objectives_carry_integer_priorities_from_the_tiers(tmp_path):
    rng = np.random.default_rng(5)
    n, S = 8, 5
    p = TierProblem(
        "t", tuple(f"llm_{i}" for i in range(n)), rng.uniform(1, 100, n), rng.uniform(1, 10, n),
        rng.random((S, n)) < 0.8, rng.uniform(5, 40, S), rng.random(S) + 0.01, tiers=4, alpha=0.8,
    )  # fmt: skip
    res = solve_portfolio(
        p, [TIER_SOLVERS["greedy"]()], objective=tier_objective, is_feasible=is_feasible_tiers,
        seed=5, time_limit_s=1.0, sense="min",
    )  # fmt: skip
    doc = tiers_document(p, res)
    objectives = inference_objectives(doc, pool="llm-pool", namespace="ai")
    validator = crd_validator(INFERENCE, "v1alpha2")
    for obj in objectives:
        validator.validate(obj)
    by_name = {o["metadata"]["name"]: o["spec"]["priority"] for o in objectives}
    tiers = {w["workload_id"].replace("_", "-"): w["tier"] for w in doc["workloads"]}
    assert set(by_name) == set(tiers)
    # A lower tier (shed last) is never served after a higher one.
    for a in by_name:
        for b in by_name:
            if tiers[a] < tiers[b]:
                assert by_name[a] > by_name[b]
    assert list(validator.iter_errors({**objectives[0], "spec": {"priority": 1}}))  # poolRef is required
    assert list(validator.iter_errors({**objectives[0], "spec": {"poolRef": {"name": "p"}, "priority": 1.5}}))
