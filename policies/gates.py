"""Promotion gates: when a freshly solved policy may replace the champion."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GateCheck", "GateReport", "evaluate_gates"]


@dataclass(frozen=True)
class GateCheck:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class GateReport:
    checks: tuple[GateCheck, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failed(self) -> list[GateCheck]:
        return [c for c in self.checks if not c.passed]

    def as_dict(self) -> dict:
        return {"passed": self.passed, "checks": [c.__dict__ for c in self.checks]}


def evaluate_gates(
    *,
    validation_passed: bool,
    infeasible: int,
    worst_gap: float | None,
    expected_value: float,
    champion_expected_value: float | None,
    max_gap: float,
    tolerance: float,
    backtest_share: float | None = None,
    champion_backtest_share: float | None = None,
    backtest_min_share: float = 0.0,
    backtest_tolerance: float = 0.02,
) -> GateReport:
    """Check a candidate against fixed rules and, when there is one, the champion.

    The champion comparison allows a relative drop of ``tolerance`` in expected value
    per hour: new telemetry may honestly make the outlook worse, but a large drop is
    more often a modelling or data problem and deserves a human look first.
    """
    checks = [
        GateCheck(
            "validation", validation_passed, "telemetry passed every rule" if validation_passed else "validation failed"
        ),
        GateCheck("feasible", infeasible == 0, f"{infeasible} scenario(s) without a feasible solution"),
    ]
    if worst_gap is None:
        checks.append(GateCheck("gap", True, "no solver reported a bound"))
    else:
        checks.append(GateCheck("gap", worst_gap <= max_gap, f"worst gap {worst_gap:.4%} (limit {max_gap:.2%})"))
    if champion_expected_value is None:
        checks.append(GateCheck("champion", True, "no champion yet: this version becomes the first"))
    else:
        floor = champion_expected_value - tolerance * abs(champion_expected_value)
        ok = expected_value >= floor
        checks.append(
            GateCheck(
                "champion",
                ok,
                f"expected value {expected_value:,.2f}/h vs champion {champion_expected_value:,.2f}/h "
                f"(floor {floor:,.2f} at tolerance {tolerance:.1%})",
            )
        )
    if backtest_share is not None:  # share of the hindsight oracle's value kept on held-out incidents
        floor = backtest_min_share
        if champion_backtest_share is not None:
            floor = max(floor, champion_backtest_share - backtest_tolerance)
        checks.append(
            GateCheck(
                "backtest",
                backtest_share >= floor - 1e-12,
                f"kept {backtest_share:.2%} of the oracle's value on held-out incidents (floor {floor:.2%}"
                + (f", champion {champion_backtest_share:.2%}" if champion_backtest_share is not None else "")
                + ")",
            )
        )
    return GateReport(tuple(checks))
