from __future__ import annotations

import pytest

from policies.gates import evaluate_gates

BASE = {
    "validation_passed": True,
    "infeasible": 0,
    "worst_gap": 0.0,
    "expected_value": 100.0,
    "champion_expected_value": None,
    "max_gap": 0.05,
    "tolerance": 0.02,
}


def test_first_version_passes_without_champion() -> None:
    report = evaluate_gates(**BASE)
    assert report.passed
    assert [c.name for c in report.checks] == ["validation", "feasible", "gap", "champion"]


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        ({"validation_passed": False}, "validation"),
        ({"infeasible": 2}, "feasible"),
        ({"worst_gap": 0.06}, "gap"),
        ({"champion_expected_value": 103.0}, "champion"),  # 100 < 103 - 2% * 103 = 100.94
    ],
)
def test_each_gate_can_hold_a_version_back(change: dict, failing: str) -> None:
    report = evaluate_gates(**{**BASE, **change})
    assert not report.passed
    assert [c.name for c in report.failed] == [failing]


def test_small_drop_within_tolerance_passes() -> None:
    assert evaluate_gates(**{**BASE, "champion_expected_value": 102.0}).passed  # floor 99.96
    assert evaluate_gates(**{**BASE, "worst_gap": None}).passed
