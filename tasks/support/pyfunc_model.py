"""The MLflow pyfunc model of a policy bundle, logged *from code* (no pickle).

``tasks/track.py`` saves this file as the model's code with one artifact: ``store``,
a one-version bundle store holding exactly the published bytes. The public key is the
serving host's (:func:`deployment_trust`), never one shipped beside the bundle. Loading builds a :class:`qres_client.client.PolicyClient` on
that store, so the registry model verifies hashes and signatures like any consumer and
answers exactly what ``qres decide`` would.

``predict`` takes a table of observed states, one row per query: ``down`` and
``degraded`` as lists of service ids or comma-separated strings (missing/empty = none),
and optionally ``policy`` (default ``shedding``). It returns one row per query:
policy, version, scenario, exact, and ``actions`` (a list of
``{"rank", "workload_id", "admit"}``, admit first).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

__all__ = ["BundlePolicyModel", "deployment_trust", "parse_services", "model_signature", "model_input_example"]

PUBLIC_KEY_FILE_ENV = "QRES_PUBLIC_KEY_FILE"
ALLOW_UNSIGNED_ENV = "QRES_ALLOW_UNSIGNED"


def model_input_example() -> pd.DataFrame:
    """Two queries, as callers send them: a list and a comma string (the second is the normal state)."""
    return pd.DataFrame({"down": [["region-eu-west"], ""], "degraded": ["", ""]})


def model_signature():
    """The declared schema: ``down``/``degraded`` take lists *or* comma strings, so their type is
    ``any`` (MLflow cannot infer that from the type hints and would warn on every save)."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    inputs = Schema(
        [
            ColSpec(AnyType(), "down", required=False),
            ColSpec(AnyType(), "degraded", required=False),
            ColSpec("string", "policy", required=False),
        ]
    )
    outputs = Schema(
        [
            ColSpec("string", "policy"),
            ColSpec("string", "version"),
            ColSpec("string", "scenario"),
            ColSpec("boolean", "exact"),
            ColSpec(AnyType(), "actions"),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def parse_services(cell: object) -> tuple[str, ...]:
    """A ``down``/``degraded`` cell -> service ids (list, array, comma string, or empty)."""
    if cell is None or (isinstance(cell, float) and cell != cell):  # None or NaN
        return ()
    if isinstance(cell, str):
        return tuple(x.strip() for x in cell.split(",") if x.strip())
    if isinstance(cell, Iterable):
        return tuple(str(x).strip() for x in cell if x is not None and str(x).strip())
    raise TypeError(f"expected a list of service ids or a comma-separated string, got {type(cell).__name__}")


def deployment_trust() -> dict:
    """The verification settings of the serving host: never anything shipped inside the model.

    The public key comes from ``$QRES_PUBLIC_KEY`` (the key JSON) or ``$QRES_PUBLIC_KEY_FILE``
    (its path, e.g. ``<key_dir>/qres-signing.pub``); unsigned bundles are refused unless
    ``$QRES_ALLOW_UNSIGNED=1``. With neither a key nor that opt-in the model does not load.
    """
    from qres_client.errors import ConfigError
    from qres_client.signing import load_public_keys

    path = os.environ.get(PUBLIC_KEY_FILE_ENV)
    keys = load_public_keys(Path(path) if path else None)  # None: $QRES_PUBLIC_KEY, if set
    allow_unsigned = os.environ.get(ALLOW_UNSIGNED_ENV) == "1"
    if keys is None and not allow_unsigned:
        raise ConfigError(
            f"no public key to verify the policy bundle: set $QRES_PUBLIC_KEY or ${PUBLIC_KEY_FILE_ENV} "
            f"(or ${ALLOW_UNSIGNED_ENV}=1 to serve unsigned bundles)"
        )
    return {"public_keys": keys, "allow_unsigned": allow_unsigned}


class BundlePolicyModel(PythonModel):
    """Serve a verified bundle through MLflow (``mlflow models serve``, ``pyfunc.load_model``)."""

    def load_context(self, context) -> None:
        from qres_client.client import PolicyClient

        self.client = PolicyClient(context.artifacts["store"], **deployment_trust())

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        rows = []
        for record in frame.to_dict(orient="records"):
            decision = self.client.decide(
                str(record.get("policy") or "shedding"),
                down=parse_services(record.get("down")),
                degraded=parse_services(record.get("degraded")),
            )
            rows.append(
                {
                    "policy": decision.policy,
                    "version": decision.version,
                    "scenario": decision.scenario,
                    "exact": decision.exact,
                    "actions": [
                        {"rank": a.rank, "workload_id": a.workload_id, "admit": a.admit} for a in decision.actions
                    ],
                }
            )
        return pd.DataFrame(rows, columns=["policy", "version", "scenario", "exact", "actions"])


mlflow.models.set_model(BundlePolicyModel())
