"""The runtime health score: closed form against the matrix exponential, against simulated
telemetry with known rates, its bundle document, and that it needs only the standard library."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from scipy.linalg import expm

from policies.model.failure_model import fit_failure_model
from qres_client.health import build_health_document, health_score, read_health_document
from tests.policies.synthetic_failures import checks_table, service_tables, simulate_down

DOC = build_health_document(
    [
        {"service_id": "pay", "failure_rate_per_min": 1 / 2880, "recovery_rate_per_min": 1 / 45, "p_down": 0.015},
        {"service_id": "db", "failure_rate_per_min": 1 / 1440, "recovery_rate_per_min": 1 / 10, "p_down": 0.007},
        {"service_id": "maps", "failure_rate_per_min": 1 / 600, "recovery_rate_per_min": 1 / 30, "p_down": 0.05},
    ],
    horizon_min=15.0,
    window_min=1,
)


@pytest.mark.parametrize("service", ["pay", "db", "maps"])
@pytest.mark.parametrize("horizon", [0.0, 1.0, 15.0, 240.0, 1e6])
def test_closed_form_matches_the_matrix_exponential(service, horizon):
    p = DOC["dependencies"][service]
    lam, mu = p["failure_rate_per_min"], p["recovery_rate_per_min"]
    transition = expm(np.array([[-lam, lam], [mu, -mu]]) * horizon)  # rows: from healthy, from down
    assert health_score(DOC, service, "up", horizon_min=horizon) == pytest.approx(transition[0, 0], abs=1e-9)
    assert health_score(DOC, service, "degraded", horizon_min=horizon) == pytest.approx(transition[0, 0], abs=1e-9)
    assert health_score(DOC, service, "down", horizon_min=horizon) == pytest.approx(transition[1, 0], abs=1e-9)
    mixed = health_score(DOC, service, horizon_min=horizon, p_down_now=0.3)
    assert mixed == pytest.approx(0.7 * transition[0, 0] + 0.3 * transition[1, 0], abs=1e-9)


def test_score_limits_and_defaults():
    assert health_score(DOC, "pay", "up", horizon_min=0) == 1.0
    assert health_score(DOC, "pay", "down", horizon_min=0) == 0.0
    far = health_score(DOC, "pay", "down", horizon_min=1e7)
    assert far == pytest.approx((1 / 45) / (1 / 45 + 1 / 2880))  # the long-run healthy share
    assert health_score(DOC, "pay", "up") == health_score(DOC, "pay", "up", horizon_min=15.0)
    # An unknown service gets the median rates of the document.
    assert DOC["default"] == pytest.approx(
        {"failure_rate_per_min": 1 / 1440, "recovery_rate_per_min": 1 / 30}, rel=1e-11
    )  # stored with 12 significant digits
    assert 0.0 < health_score(DOC, "never-heard-of", "down") < health_score(DOC, "never-heard-of", "up") < 1.0


@pytest.mark.parametrize("kwargs", [{"state": "sideways"}, {"horizon_min": -1.0}, {"p_down_now": 1.5}])
def test_bad_arguments_are_rejected(kwargs):
    with pytest.raises(ValueError):
        health_score(DOC, "pay", **kwargs)


def test_document_round_trip_and_bad_documents():
    assert read_health_document(json.dumps(DOC)) == DOC
    bad = json.loads(json.dumps(DOC))
    bad["dependencies"]["pay"]["recovery_rate_per_min"] = -1
    with pytest.raises(ValueError, match="pay.recovery_rate_per_min"):
        read_health_document(json.dumps(bad))
    with pytest.raises(ValueError, match="schema"):
        read_health_document(json.dumps({"schema": 99}))
    with pytest.raises(ValueError, match="horizon_min"):
        build_health_document([], horizon_min=0, window_min=1)


def test_fitted_score_predicts_simulated_recovery():
    """Rates fitted from 60 days of one-minute checks predict P(healthy in 30 min | down now)."""
    rng = np.random.default_rng(5)
    lam, mu = np.array([1 / 1440, 1 / 720]), np.array([1 / 40, 1 / 25])
    minutes, horizon = 60 * 1440, 30
    down = simulate_down(rng, minutes, lam, mu)
    services, deps = service_tables(["a", "b"])
    model = fit_failure_model(services, deps, checks_table(down, ["a", "b"]), hysteresis_windows=1)
    doc = build_health_document(model.per_dependency.to_dict("records"), horizon_min=horizon, window_min=1)
    for j, name in enumerate(["a", "b"]):
        now, later = down[:-horizon, j], down[horizon:, j]
        observed = float((~later[now]).mean())  # share healthy 30 minutes after a down minute
        truth = (mu[j] / (lam[j] + mu[j])) * (1 - math.exp(-(lam[j] + mu[j]) * horizon))
        assert health_score(doc, name, "down") == pytest.approx(truth, abs=0.12)
        assert health_score(doc, name, "down") == pytest.approx(observed, abs=0.12)
        assert health_score(doc, name, "up") > 0.97


def test_health_module_needs_only_the_standard_library():
    code = (
        "import sys, qres_client.health\n"
        "heavy = {'numpy', 'pandas', 'pyarrow', 'scipy', 'prefect', 'mlflow'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
