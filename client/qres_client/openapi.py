"""The OpenAPI 3.1 document of ``qres-serve`` (kept as data, so non-Python clients can be generated)."""

from __future__ import annotations

__all__ = ["OPENAPI"]

_NAMES = {"type": "string", "description": "Comma-separated dependency ids, e.g. auth,payments"}
_ERROR = {
    "description": "An error, explained",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}

OPENAPI: dict = {
    "openapi": "3.1.0",
    "info": {
        "title": "qresilience decision service",
        "version": "1",
        "description": "What to admit, shed or fail over while dependencies are down, from verified policy bundles.",
    },
    "paths": {
        "/v1/decide": {
            "get": {
                "operationId": "decide",
                "summary": "The precomputed plan for an observed outage (same JSON as `qres decide --json`)",
                "parameters": [
                    {"name": "policy", "in": "query", "schema": {"type": "string", "default": "shedding"}},
                    {"name": "down", "in": "query", "schema": _NAMES},
                    {"name": "degraded", "in": "query", "schema": _NAMES},
                ],
                "responses": {
                    "200": {
                        "description": "The decision",
                        "headers": {
                            "X-Qres-Warning": {
                                "description": "Names the bundle does not know, and the closest known ones",
                                "schema": {"type": "string"},
                            }
                        },
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Decision"}}},
                    },
                    "400": _ERROR,
                    "404": _ERROR,
                    "503": _ERROR,
                },
            }
        },
        "/healthz": {
            "get": {
                "operationId": "health",
                "summary": "200 once a verified bundle is loaded, 503 before",
                "responses": {"200": {"description": "Ready"}, "503": {"description": "No verified bundle yet"}},
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus exposition format",
                "responses": {"200": {"description": "Metrics", "content": {"text/plain": {}}}},
            }
        },
    },
    "components": {
        "schemas": {
            "Action": {
                "type": "object",
                "required": ["workload_id", "admit", "rank"],
                "properties": {
                    "workload_id": {"type": "string"},
                    "admit": {"type": "number", "minimum": 0, "maximum": 1},
                    "rank": {"type": "integer"},
                    "act_after_s": {
                        "type": "number",
                        "minimum": 0,
                        "description": "shedding, optional: seconds in the state before switching to admit",
                    },
                    "hold_s": {
                        "type": "number",
                        "minimum": 0,
                        "description": "shedding, optional: after a switch, no re-admission before this",
                    },
                    "admit_max": {
                        "type": "number",
                        "minimum": 0,
                        "maximum": 1,
                        "description": "shedding, optional: the share admission control may run when capacity "
                        "is there, serving in rank order (>= admit)",
                    },
                },
                "additionalProperties": True,
                "description": "Families other than shedding add their own columns; qres_client.controller "
                "applies act_after_s and hold_s (to admit_max too)",
            },
            "Decision": {
                "type": "object",
                "required": ["policy", "version", "scenario", "exact", "actions"],
                "properties": {
                    "policy": {"type": "string"},
                    "version": {"type": "string"},
                    "scenario": {"type": "string"},
                    "exact": {"type": "boolean"},
                    "actions": {"type": "array", "items": {"$ref": "#/components/schemas/Action"}},
                },
            },
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
        }
    },
}
