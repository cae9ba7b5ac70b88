"""The failure model on 20 minutes of hand-made telemetry, with every expected number derived by hand.

Services (sorted): api, cache, db, pay, region-x. Hard edges: api -> db -> region-x; api -> pay is
soft. Two probes (p1, p2) check every service every minute, except ``cache`` (never checked) and
``pay`` at minutes 0 and 5 (no check). ``TIMELINES`` has one character per minute 0..19:
u up, g degraded, d down, . no check. The story:
- pay: a real outage at 3..7 (its checks missing at 5: carried forward as down), a blip where only
  p1 says down at 12 (a probe disagreement: degraded, never down), and an outage 18..19 that the
  end of the data cuts off.
- db: a 1-minute blip seen by both probes at 10 (hysteresis k=2 removes it, k=1 keeps it), then
  down 14..17 because region-x, which it hard-depends on, is down 14..16.
- api: degraded 5..6 (pay, a soft dependency, is down), down 14..16 with region-x.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats

from policies.errors import DataValidationError
from policies.model.failure_model import DEGRADED, DOWN, UP, fit_failure_model, list_outages
from policies.schema import DEPENDENCIES, HEALTH_CHECKS, INCIDENTS, SERVICES

T0 = pd.Timestamp("2026-01-05 00:00", tz="UTC")

TIMELINES = {
    # minute        0    5    10   15   (20 characters each)
    ("api", "p1"): "uuuuugguuuuuuuddduuu",
    ("api", "p2"): "uuuuugguuuuuuuddduuu",
    ("db", "p1"): "uuuuuuuuuuduuudddduu",
    ("db", "p2"): "uuuuuuuuuuduuudddduu",
    ("pay", "p1"): ".uudd.dduuuuduuuuudd",
    ("pay", "p2"): ".uudd.dduuuuuuuuuudd",
    ("region-x", "p1"): "u" * 14 + "ddd" + "uuu",
    ("region-x", "p2"): "u" * 14 + "ddd" + "uuu",
}
STATUS = {"u": "up", "g": "degraded", "d": "down"}


def make_tables() -> dict[str, pa.Table]:
    """The fixture as pyarrow tables in the schema of ``policies.schema``."""
    assert all(len(line) == 20 for line in TIMELINES.values())
    rows = [
        {
            "ts": T0 + pd.Timedelta(minutes=m, seconds=7 + 20 * (probe == "p2")),
            "service_id": svc,
            "probe": probe,
            "status": STATUS[c],
            "latency_ms": 10.0,
            "error_rate": 0.0,
            "http_code": 200,
        }
        for (svc, probe), line in TIMELINES.items()
        for m, c in enumerate(line)
        if c != "."
    ]
    services = pa.Table.from_pylist(
        [
            {"service_id": "api", "kind": "internal", "tier": 0, "capacity": 10.0, "region": "region-x"},
            {"service_id": "cache", "kind": "internal", "tier": 2, "capacity": 5.0, "region": "region-x"},
            {"service_id": "db", "kind": "internal", "tier": 0, "capacity": 10.0, "region": "region-x"},
            {"service_id": "pay", "kind": "saas", "tier": 1, "capacity": 1.0, "region": None},
            {"service_id": "region-x", "kind": "region", "tier": 0, "capacity": 100.0, "region": None},
        ],
        schema=SERVICES,
    )
    dependencies = pa.Table.from_pylist(
        [
            {"service_id": "api", "depends_on": "db", "hard": True},
            {"service_id": "api", "depends_on": "pay", "hard": False},
            {"service_id": "db", "depends_on": "region-x", "hard": True},
        ],
        schema=DEPENDENCIES,
    )
    incidents = pa.Table.from_pylist(
        [
            {
                "incident_id": "INC-1",
                "started_at": T0 + pd.Timedelta(minutes=3),
                "resolved_at": None,
                "severity": 2,
                "affected": ["pay"],
                "summary": "pay outage",
            },
            {
                "incident_id": "INC-2",
                "started_at": T0 + pd.Timedelta(minutes=14),
                "resolved_at": None,
                "severity": 1,
                "affected": ["region-x", "db", "api", "db", "ghost"],
                "summary": "region",
            },
            {
                "incident_id": "INC-3",
                "started_at": T0,
                "resolved_at": None,
                "severity": 3,
                "affected": ["pay", "api"],
                "summary": "checkout errors",
            },
        ],
        schema=INCIDENTS,
    )
    return {
        "services": services,
        "dependencies": dependencies,
        "health_checks": pa.Table.from_pylist(rows, schema=HEALTH_CHECKS),
        "incidents": incidents,
    }


def fit(k: int = 2, **kw):
    t = make_tables()
    return fit_failure_model(
        t["services"], t["dependencies"], t["health_checks"], t["incidents"], hysteresis_windows=k, **kw
    )


def row(model, service: str) -> pd.Series:
    pd_ = model.per_dependency
    return pd_[pd_["service_id"] == service].iloc[0]


def test_windows_and_states_follow_agreement_gaps_and_hysteresis():
    m = fit(k=2)
    assert m.services == ("api", "cache", "db", "pay", "region-x")
    assert m.start == T0 and m.end == T0 + pd.Timedelta(minutes=20)
    assert m.states.shape == (20, 5) and m.states.dtype == np.int8
    col = {s: m.states[:, j].tolist() for j, s in enumerate(m.services)}
    # pay: 0 never checked -> up; 3..7 down (5 carried forward); 12 blip gone; 18..19 down.
    assert col["pay"] == [0, 0, 0, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2]
    # db: the 1-window blip at 10 is absorbed (k=2); 14..17 down.
    assert col["db"] == [0] * 14 + [2] * 4 + [0] * 2
    assert col["api"] == [0] * 5 + [1, 1] + [0] * 7 + [2] * 3 + [0] * 3
    assert col["region-x"] == [0] * 14 + [2] * 3 + [0] * 3
    assert col["cache"] == [0] * 20
    assert m.info["rows"] == 8 * 20 - 4  # pay misses minutes 0 and 5 on both probes


def test_hysteresis_one_keeps_blips_and_counts_transitions():
    m1, m2 = fit(k=1), fit(k=2)
    j_db, j_pay = m1.services.index("db"), m1.services.index("pay")
    assert m1.states[10, j_db] == DOWN and m2.states[10, j_db] == UP
    # The single-probe blip at 12 is a disagreement (1 of 2 down): degraded, never down.
    assert m1.states[12, j_pay] == DEGRADED and m2.states[12, j_pay] == UP
    # Raw changes between consecutive windows: api 4 (5,7,14,17), db 4 (10,11,14,18),
    # pay 5 (3,8,12,13,18), region-x 2 (14,17), cache 0 -> 15. After k=2: db loses 2, pay loses 2.
    assert m2.info["raw_transitions"] == 15
    assert m2.info["filtered_transitions"] == 11
    assert m2.info["transitions_removed"] == 4
    assert m1.info["filtered_transitions"] == m1.info["raw_transitions"] == 15


def test_per_dependency_posterior_matches_hand_counts():
    m = fit(k=2)
    assert m.per_dependency["service_id"].tolist() == list(m.services)
    # windows_down by hand: api 3, cache 0, db 4, pay 7 (3..7 and 18..19), region-x 3.
    expected_down = {"api": 3, "cache": 0, "db": 4, "pay": 7, "region-x": 3}
    assert dict(zip(m.per_dependency["service_id"], m.per_dependency["windows_down"])) == expected_down
    pay = row(m, "pay")
    assert pay["kind"] == "saas" and pay["windows"] == 20
    # Beta(0.5 + 7, 0.5 + 13): mean 7.5 / 21.
    assert pay["p_down"] == pytest.approx(7.5 / 21)
    assert pay["p_down_window_lo"] == pytest.approx(stats.beta.ppf(0.025, 7.5, 13.5))
    assert pay["p_down_window_hi"] == pytest.approx(stats.beta.ppf(0.975, 7.5, 13.5))
    # Episode interval: 2 entries into down (3, 18) in 13 up minutes, 1 exit (8) in 7 down minutes;
    # m0 = median of the completed episodes (api 3, db 4, pay 5, region-x 3; pay's last one is cut
    # by the end) = 3.5. lambda ~ Gamma(2.5, 13), mu ~ Gamma(2, 3.5 + 7).
    c = (3.5 + 7) / 13
    x_lo, x_hi = stats.beta.ppf([0.025, 0.975], 2.5, 2.0)
    assert pay["p_down_lo"] == pytest.approx(c * x_lo / (1 - x_lo + c * x_lo))
    assert pay["p_down_hi"] == pytest.approx(c * x_hi / (1 - x_hi + c * x_hi))
    assert pay["failure_rate_per_min"] == pytest.approx(2.5 / 13)
    assert pay["recovery_rate_per_min"] == pytest.approx(2 / 10.5)
    # The closed form equals the quantiles of lambda / (lambda + mu) drawn from the two Gammas.
    rng = np.random.default_rng(0)
    lam, mu = rng.gamma(2.5, 1 / 13, 400_000), rng.gamma(2.0, 1 / 10.5, 400_000)
    q = np.quantile(lam / (lam + mu), [0.025, 0.975])
    assert q == pytest.approx([pay["p_down_lo"], pay["p_down_hi"]], rel=0.02)
    assert pay["p_down_lo"] < 7 / 20 < pay["p_down_hi"]
    cache = row(m, "cache")  # never down: Beta(0.5, 20.5)
    assert cache["p_down"] == pytest.approx(0.5 / 21)
    assert cache["p_down_window_lo"] == pytest.approx(stats.beta.ppf(0.025, 0.5, 20.5))
    assert 0 < cache["p_down_lo"] < cache["p_down_hi"] < 1
    api = row(m, "api")
    assert api["windows_degraded"] == 2 and api["p_degraded"] == pytest.approx(2.5 / 21)
    # A 90% interval is narrower than the 95% one.
    narrow = row(fit(k=2, credible=0.9), "pay")
    assert pay["p_down_lo"] < narrow["p_down_lo"] < narrow["p_down_hi"] < pay["p_down_hi"]


def test_outages_and_time_to_recover():
    m = fit(k=2)
    pay = row(m, "pay")
    # Two episodes of 5 and 2 minutes (the second cut off by the end of the data).
    assert pay["outages"] == 2
    assert pay["outage_rate_per_day"] == pytest.approx(2 / (20 / 1440))
    # numpy linear quantiles of [2, 5]: 2 + q * 3.
    assert pay["ttr_p50_min"] == pytest.approx(3.5)
    assert pay["ttr_p90_min"] == pytest.approx(4.7)
    assert pay["ttr_p99_min"] == pytest.approx(4.97)
    assert pay["mttr_min"] == pytest.approx(3.5)
    cache = row(m, "cache")
    assert cache["outages"] == 0 and math.isnan(cache["ttr_p50_min"]) and math.isnan(cache["mttr_min"])
    db1 = row(fit(k=1), "db")  # with k=1 the blip is an episode of 1: [1, 4]
    assert db1["outages"] == 2 and db1["windows_down"] == 5
    assert (db1["ttr_p50_min"], db1["ttr_p90_min"], db1["mttr_min"]) == pytest.approx((2.5, 3.7, 2.5))
    episodes = list_outages(m)
    assert episodes["duration_min"].tolist() == [3.0, 4.0, 5.0, 2.0, 3.0]  # api, db, pay x2, region-x
    assert episodes["start"].iloc[2] == T0 + pd.Timedelta(minutes=3)


def test_co_failure_joint_counts_lift_and_incidents():
    co = fit(k=2).co_failure
    got = {(r.a, r.b): (r.windows_joint, r.lift, r.incidents_joint) for r in co.itertuples()}
    # Down windows: api {14,15,16}, db {14..17}, pay {3..7,18,19}, region-x {14,15,16}; cache never.
    # lift = (joint/20) / ((n_a/20)(n_b/20)) = 20 * joint / (n_a * n_b).
    # INC-2 names region-x, db, api (db twice, unknown "ghost" ignored); INC-3 names pay and api.
    assert got == {
        ("api", "region-x"): (3, pytest.approx(20 * 3 / (3 * 3)), 1),
        ("api", "db"): (3, pytest.approx(20 * 3 / (3 * 4)), 1),
        ("db", "region-x"): (3, pytest.approx(20 * 3 / (4 * 3)), 1),
        ("api", "pay"): (0, 0.0, 1),  # never down together, kept for the shared incident
    }
    # Sorted by lift desc, then a, b: 6.67, then the two 5.0 ties by a, then 0.
    assert list(zip(co["a"], co["b"])) == [("api", "region-x"), ("api", "db"), ("db", "region-x"), ("api", "pay")]
    assert co["p_joint"].iloc[0] == pytest.approx(3 / 20)


def test_without_incidents_only_joint_windows_count():
    t = make_tables()
    m = fit_failure_model(t["services"], t["dependencies"], t["health_checks"])
    assert set(zip(m.co_failure["a"], m.co_failure["b"])) == {("api", "region-x"), ("api", "db"), ("db", "region-x")}
    assert (m.co_failure["incidents_joint"] == 0).all()


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["down", "up"], DEGRADED),  # a tie on down is a disagreement, not an outage
        (["down", "down"], DOWN),
        (["down"], DOWN),  # a lone reporting probe decides
        (["degraded", "up"], DEGRADED),
        (["down", "down", "up"], DOWN),
        (["down", "up", "up"], UP),
        (["degraded", "down", "up", "up"], DEGRADED),
        (["up", "up"], UP),
    ],
)
def test_probe_agreement_rule(statuses, expected):
    t = make_tables()
    checks = pa.Table.from_pylist(
        [{"ts": T0, "service_id": "pay", "probe": f"p{i}", "status": s} for i, s in enumerate(statuses)]
        # a second check of p0 in the same window that is better does not hide its worst status
        + [{"ts": T0 + pd.Timedelta(seconds=30), "service_id": "pay", "probe": "p0", "status": "up"}],
        schema=HEALTH_CHECKS,
    )
    m = fit_failure_model(t["services"], t["dependencies"], checks, hysteresis_windows=1)
    assert m.states.shape == (1, 5)
    assert m.states[0, m.services.index("pay")] == expected


def test_wider_windows_take_each_probes_worst_check():
    m = fit(k=1, window_min=5)
    # 4 windows of 5 min. pay: w0 = min 0-4 (both probes down at 3,4) down; w1 = 5-9 down;
    # w2 = 10-14: p1 down at 12, p2 up -> degraded; w3 = 15-19: down at 18,19.
    assert m.states.shape == (4, 5) and m.end == T0 + pd.Timedelta(minutes=20)
    assert m.states[:, m.services.index("pay")].tolist() == [DOWN, DOWN, DEGRADED, DOWN]
    assert row(m, "pay")["outages"] == 2  # [w0, w1] and [w3]
    assert row(m, "pay")["ttr_p50_min"] == pytest.approx((10 + 5) / 2)


@pytest.mark.parametrize(
    ("column", "value"),
    [("service_id", "unknown-svc"), ("status", "sideways")],
)
def test_bad_references_fail_with_the_column_named(column, value):
    t = make_tables()
    checks = t["health_checks"].to_pylist()
    checks[3][column] = value
    with pytest.raises(DataValidationError, match=column) as err:
        fit_failure_model(t["services"], t["dependencies"], pa.Table.from_pylist(checks, schema=HEALTH_CHECKS))
    assert err.value.violations[0].examples == [value]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window_min": 0},
        {"hysteresis_windows": 0},
        {"credible": 1.0},
        {"prior": (0.0, 1.0)},
        {"hysteresis_min": -1.0},
        {"agreement": "most"},
        {"alpha": 0.0},
    ],
)
def test_bad_parameters_are_rejected(kwargs):
    t = make_tables()
    with pytest.raises(ValueError):
        fit_failure_model(t["services"], t["dependencies"], t["health_checks"], **kwargs)


def test_states_are_read_only_and_fit_is_deterministic():
    a, b = fit(), fit()
    with pytest.raises(ValueError):
        a.states[0, 0] = 2
    assert np.array_equal(a.states, b.states)
    pd.testing.assert_frame_equal(a.per_dependency, b.per_dependency)
    pd.testing.assert_frame_equal(a.co_failure, b.co_failure)
    assert a.info == b.info
