"""Scenarios from the hand-made telemetry of ``test_failure_model`` (k=2), derived by hand.

States per window after the fit (api, cache, db, pay, region-x; 0 up, 1 degraded, 2 down):

    w0-2    all up                      -> normal
    w3-4    pay down                    -> down=pay
    w5-6    pay down, api degraded      -> down=pay;degraded=api
    w7      pay down                    -> down=pay
    w8-13   all up                      -> normal
    w14-16  api, db, region-x down      -> root: region-x (db hard-depends on it, api on db)
    w17     db down                     -> down=db
    w18-19  pay down                    -> down=pay

Counts over 20 windows: normal 9, down=pay 5 (runs of 2, 1, 2), down=region-x 3,
down=pay;degraded=api 2, down=db 1. Depended-on services: db, pay, region-x.
All outage episodes (minutes): api 3, db 4, pay 5 and 2, region-x 3. Pay's 2 is cut by the end of
the data (censored), so the median of the completed ones is median(3, 4, 5, 3) = 3.5.
"""

from __future__ import annotations

import numpy as np
import pytest

from policies.model.failure_model import fit_failure_model
from policies.scenarios.scenario_set import FALLBACK_KEY, NORMAL_KEY, build_scenarios, scenario_key
from tests.policies.test_failure_model import make_tables

EVERYTHING = ("api", "cache", "db", "pay", "region-x")


@pytest.fixture(scope="module")
def tables():
    return make_tables()


@pytest.fixture(scope="module")
def model(tables):
    return fit_failure_model(
        tables["services"], tables["dependencies"], tables["health_checks"], tables["incidents"], hysteresis_windows=2
    )


def by_key(sset):
    return {s.key: s for s in sset.scenarios}


def test_empirical_patterns_probabilities_and_durations(model, tables):
    sset = build_scenarios(model, tables["dependencies"])
    # 0.995 * 20 = 19.9 windows: normal 9 + 5 + 3 + 2 + 1 = 20 -> every pattern is kept.
    assert [s.key for s in sset.scenarios] == [
        NORMAL_KEY,
        "down=pay",  # 0.25
        "down=region-x",  # 0.15
        "down=pay;degraded=api",  # 0.10
        "down=db",  # 0.05
        FALLBACK_KEY,
    ]
    s = by_key(sset)
    assert s[NORMAL_KEY].probability == pytest.approx(9 / 20) and s[NORMAL_KEY].source == "normal"
    assert s[NORMAL_KEY].expected_duration_min == pytest.approx(9 / 2)  # runs w0-2 and w8-13
    assert s["down=pay"].probability == pytest.approx(5 / 20)
    assert s["down=pay"].expected_duration_min == pytest.approx(5 / 3)  # three runs
    assert s["down=pay;degraded=api"].degraded == ("api",)
    assert s["down=pay;degraded=api"].effective_down == ("pay",)  # soft edge: api is not taken down
    assert s["down=db"].effective_down == ("api", "db")
    assert all(x.source == "empirical" for x in sset.scenarios[1:-1])
    assert sset.covered_mass == pytest.approx(1.0)
    assert sset.info["n_empirical_patterns"] == 4 and sset.info["n_kept_empirical"] == 4
    assert sset.info["n_single_added"] == 0 and sset.info["windows"] == 20


def test_region_outage_is_reduced_to_its_root(model, tables):
    region = by_key(build_scenarios(model, tables["dependencies"]))["down=region-x"]
    # Three services were seen down in w14-16; the key names only the root cause.
    assert region.down == ("region-x",)
    assert region.degraded == ()
    assert region.effective_down == ("api", "db", "region-x")
    assert region.probability == pytest.approx(3 / 20) and region.expected_duration_min == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("target", "kept", "covered"),
    [
        # cumulative windows: normal 9, +pay 14, +region-x 17, +pay;degraded=api 19, +db 20
        (0.45, [], 9 / 20),  # normal alone reaches 9 / 20
        (0.70, ["down=pay"], 14 / 20),  # exactly reached: no further pattern is added
        (0.80, ["down=pay", "down=region-x"], 17 / 20),
        (0.96, ["down=pay", "down=region-x", "down=pay;degraded=api", "down=db"], 1.0),
    ],
)
def test_mass_cut_keeps_the_smallest_prefix(model, tables, target, kept, covered):
    sset = build_scenarios(model, tables["dependencies"], target_mass=target)
    empirical = [s.key for s in sset.scenarios if s.source == "empirical"]
    assert empirical == kept
    assert sset.covered_mass == pytest.approx(covered)
    assert sset.target_mass == target


def test_single_dependency_outages_are_always_added(model, tables):
    sset = build_scenarios(model, tables["dependencies"], target_mass=0.8)
    s = by_key(sset)
    # db was seen alone in one window but fell below the cut: its empirical probability comes back,
    # its duration is db's mean time to recover (one 4-minute episode). pay and region-x were kept.
    assert s["down=db"].source == "single"
    assert s["down=db"].probability == pytest.approx(1 / 20)
    assert s["down=db"].expected_duration_min == pytest.approx(4.0)
    assert s["down=db"].effective_down == ("api", "db")
    assert sset.info["n_single_added"] == 1
    assert sset.covered_mass == pytest.approx(17 / 20)  # singles do not add to the covered mass
    assert "down=pay;degraded=api" not in s  # below the cut and not a single outage


def test_single_never_seen_alone_gets_the_prior_probability(model, tables):
    sset = build_scenarios(model, tables["dependencies"], dependency_ids=["api", "ghost", "pay"])
    s = by_key(sset)
    # prior_a / (windows + prior_a + prior_b) = 0.5 / 21 for both never-seen-alone ids.
    assert s["down=api"].probability == pytest.approx(0.5 / 21)
    assert s["down=api"].expected_duration_min == pytest.approx(3.0)  # api's mttr
    assert s["down=ghost"].probability == pytest.approx(0.5 / 21)
    assert s["down=ghost"].expected_duration_min == pytest.approx(3.5)  # median of completed episodes
    assert s["down=ghost"].effective_down == ("ghost",)
    assert s["down=pay"].source == "empirical"  # already kept: not added twice
    assert sset.info["n_single_added"] == 2
    assert sset.info["single_prior_probability"] == pytest.approx(0.5 / 21)


def test_fallback_is_last_and_covers_everything(model, tables):
    sset = build_scenarios(model, tables["dependencies"])
    fb = sset.scenarios[-1]
    assert fb.key == FALLBACK_KEY and fb.source == "fallback" and fb.probability == 0.0
    assert fb.down == ("db", "pay", "region-x") and fb.degraded == ()
    assert fb.effective_down == EVERYTHING
    for s in sset.scenarios:
        assert set(s.down) | set(s.effective_down) <= set(fb.effective_down)
    assert fb.expected_duration_min == pytest.approx(3.5)  # median of completed episodes


def test_ignoring_degraded_merges_patterns(model, tables):
    s = by_key(build_scenarios(model, tables["dependencies"], include_degraded=False))
    # w3-7 and w18-19 are now all down=pay: 7 windows in 2 runs.
    assert "down=pay;degraded=api" not in s
    assert s["down=pay"].probability == pytest.approx(7 / 20)
    assert s["down=pay"].expected_duration_min == pytest.approx(3.5)


def test_keys_are_canonical_and_order_is_deterministic(model, tables):
    a = build_scenarios(model, tables["dependencies"], target_mass=0.8, dependency_ids=["api", "db"])
    b = build_scenarios(model, tables["dependencies"], target_mass=0.8, dependency_ids=["db", "api"])
    assert a == b
    for s in a.scenarios[:-1]:
        assert s.key == scenario_key(s.down, s.degraded)
    middle = a.scenarios[1:-1]
    assert [(-s.probability, s.key) for s in middle] == sorted((-s.probability, s.key) for s in middle)


def test_bad_target_mass_is_rejected(model, tables):
    with pytest.raises(ValueError, match="target_mass"):
        build_scenarios(model, tables["dependencies"], target_mass=0.0)


def test_quiet_history_has_only_normal_singles_and_fallback(tables):
    # Only the first 3 minutes (every check up; pay unchecked at minute 0 counts as up).
    quiet = tables["health_checks"].filter(
        tables["health_checks"].column("ts").to_numpy() < np.datetime64("2026-01-05T00:03")
    )
    m = fit_failure_model(tables["services"], tables["dependencies"], quiet)
    sset = build_scenarios(m, tables["dependencies"])
    assert [s.source for s in sset.scenarios] == ["normal", "single", "single", "single", "fallback"]
    assert sset.scenarios[0].probability == 1.0 and sset.scenarios[0].expected_duration_min == 3.0
    assert sset.covered_mass == 1.0
    for s in sset.scenarios[1:4]:  # never seen: prior 0.5 / (3 + 1); no episodes at all: 60 min
        assert s.probability == pytest.approx(0.5 / 4) and s.expected_duration_min == 60.0
    assert [s.key for s in sset.scenarios[1:4]] == ["down=db", "down=pay", "down=region-x"]
