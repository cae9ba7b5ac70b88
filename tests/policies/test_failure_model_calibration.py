"""The failure model against synthetic telemetry generated from known parameters.

- the episode-based 95% intervals contain the true P(down) for about 95% of dependencies over
  many seeds (and the naive per-window Beta interval does not: it ignores autocorrelation);
- planted co-failure pairs are found with precision and recall >= 0.9;
- hysteresis removes planted flaps (one probe, or both probes for one check) but keeps real outages,
  as a count of windows or as a minimum duration; the probe agreement rules differ as documented.
"""

from __future__ import annotations

import numpy as np
import pytest

from policies.model.failure_model import DEGRADED, DOWN, UP, fit_failure_model
from tests.policies.synthetic_failures import checks_table, service_tables, simulate_down

N_DEPS = 20
DAY_MIN = 1440


def fit_synthetic(down, names, **kw):
    services, deps = service_tables(names)
    return fit_failure_model(
        services, deps, checks_table(down, names, **{k: kw.pop(k) for k in ("probes", "flaps") if k in kw}), **kw
    )


def test_episode_intervals_cover_the_true_p_down_about_95_percent():
    hits = naive_hits = total = 0
    for seed in range(12):
        rng = np.random.default_rng(seed)
        lam = 1 / rng.uniform(DAY_MIN, 5 * DAY_MIN, N_DEPS)  # one outage every 1-5 days
        mu = 1 / rng.uniform(20, 120, N_DEPS)  # lasting 20-120 minutes on average
        down = simulate_down(rng, 14 * DAY_MIN, lam, mu)
        names = [f"dep-{i:02d}" for i in range(N_DEPS)]
        per_dep = fit_synthetic(down, names, hysteresis_windows=1).per_dependency
        truth = lam / (lam + mu)
        hits += int(((per_dep["p_down_lo"] < truth) & (truth < per_dep["p_down_hi"])).sum())
        naive_hits += int(((per_dep["p_down_window_lo"] < truth) & (truth < per_dep["p_down_window_hi"])).sum())
        total += N_DEPS
    coverage = hits / total
    # 240 intervals: a binomial(240, 0.95) lies in [0.91, 0.98] with probability > 0.99.
    assert 0.90 <= coverage <= 0.995, coverage
    assert naive_hits / total < 0.5  # windows are not independent draws: far too narrow


def test_planted_co_failure_pairs_are_found():
    planted = {(0, 1), (2, 3), (4, 5), (6, 7)}
    tp = fp = fn = 0
    for seed in range(6):
        rng = np.random.default_rng(100 + seed)
        n = 16
        lam, mu = 1 / rng.uniform(DAY_MIN, 4 * DAY_MIN, n), 1 / rng.uniform(20, 90, n)
        down = simulate_down(rng, 30 * DAY_MIN, lam, mu, pairs=tuple(sorted(planted)), shock_rate=1 / (3 * DAY_MIN))
        names = [f"dep-{i:02d}" for i in range(n)]
        co = fit_synthetic(down, names).co_failure
        sig = co[co["significant"]]
        found = {(int(a[4:]), int(b[4:])) for a, b in zip(sig["a"], sig["b"])}
        tp, fp, fn = tp + len(found & planted), fp + len(found - planted), fn + len(planted - found)
        assert not sig["graph_linked"].any()  # no edges in this graph
        # Independent pairs that overlapped by chance are reported, but not as significant.
        assert (co.loc[~co["significant"], "p_value"] >= 0.05 / (n * (n - 1) / 2)).all()
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    assert precision >= 0.9 and recall >= 0.9, (precision, recall)


def flap_fixture():
    """3 dependencies, 2 probes, one day; real outages of 10-45 minutes and planted flaps."""
    minutes, n = DAY_MIN, 3
    down = np.zeros((minutes, n), dtype=bool)
    real = [(0, 100, 130), (0, 900, 945), (1, 300, 310), (2, 500, 520)]
    for j, a, b in real:
        down[a:b, j] = True
    flaps = np.zeros((minutes, n, 2), dtype=bool)
    one_probe = [(0, 200, 0), (0, 600, 1), (1, 50, 0), (2, 1000, 1)]  # one probe says down for one check
    both = [(1, 700), (2, 1200), (2, 1300)]  # both probes say down for one check
    for j, m, p in one_probe:
        flaps[m, j, p] = True
    for j, m in both:
        flaps[m, j, :] = True
    return down, flaps, real, one_probe, both


@pytest.mark.parametrize(
    "rule", [{"hysteresis_windows": 2}, {"hysteresis_windows": 1, "hysteresis_min": 2.0}, {"hysteresis_windows": 3}]
)
def test_hysteresis_removes_planted_flaps_and_keeps_real_outages(rule):
    down, flaps, real, one_probe, both = flap_fixture()
    names = ["a", "b", "c"]
    m = fit_synthetic(down, names, probes=2, flaps=flaps, **rule)
    assert np.array_equal(m.states == DOWN, down)  # every real outage kept whole, nothing else down
    assert (m.states != DEGRADED).all()  # one-probe blips (disagreements) are gone too
    assert m.per_dependency["outages"].tolist() == [2, 1, 1]
    # Raw changes: 2 per real outage, 2 per flap (a one-probe blip reads as degraded for one window).
    assert m.info["raw_transitions"] == 2 * (len(real) + len(one_probe) + len(both))
    assert m.info["transitions_removed"] == 2 * (len(one_probe) + len(both))


def test_without_hysteresis_flaps_stay():
    down, flaps, real, one_probe, both = flap_fixture()
    m = fit_synthetic(down, ["a", "b", "c"], probes=2, flaps=flaps, hysteresis_windows=1)
    assert m.info["transitions_removed"] == 0
    assert int((m.states == DEGRADED).sum()) == len(one_probe)
    assert m.per_dependency["outages"].tolist() == [2, 2, 3]  # two-probe blips count as outages


def test_minimum_duration_longer_than_an_outage_removes_it():
    down, flaps, *_ = flap_fixture()
    m = fit_synthetic(down, ["a", "b", "c"], probes=2, flaps=flaps, hysteresis_min=15.0)
    assert m.info["hysteresis_windows"] == 15
    assert m.per_dependency["outages"].tolist() == [2, 0, 1]  # b's 10-minute outage is below 15 minutes


@pytest.mark.parametrize(("agreement", "expected"), [("majority", DEGRADED), ("any", DOWN), ("all", UP)])
def test_probe_agreement_rules(agreement, expected):
    down, flaps, _, one_probe, _ = flap_fixture()
    m = fit_synthetic(down, ["a", "b", "c"], probes=2, flaps=flaps, hysteresis_windows=1, agreement=agreement)
    j, minute, _ = one_probe[0]
    assert m.states[minute, j] == expected
    assert m.info["agreement"] == agreement


@pytest.mark.parametrize("agreement", ["majority", "any", "all"])
def test_dense_and_sorting_paths_agree(agreement):
    """Probe agreement has two paths (dense counting for regular checks, sorting for sparse event
    logs); they must give the same states on any input."""
    from policies.model.states import _agree_dense, _agree_sorted

    rng = np.random.default_rng(9)
    n_cells, n_p = 500, 3
    key = rng.integers(0, n_cells * n_p, 4000)
    key[:50] = 7  # many checks of one probe in one cell
    status = rng.choice(3, size=key.size, p=[0.7, 0.15, 0.15]).astype(np.int64)
    dense, dense_cells = _agree_dense(key, status, n_cells, n_p, agreement)
    sort, sort_cells = _agree_sorted(key, status, n_p, agreement)
    assert np.array_equal(dense_cells, sort_cells) and np.array_equal(dense, sort)
