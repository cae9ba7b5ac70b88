"""The one error tree of qresilience.

    QresError                      anything this project raises on purpose
    ├── ConfigError                a setting or a config file is wrong
    ├── DataValidationError        input telemetry broke a schema or data rule
    ├── InfeasiblePolicyError      a policy problem has no feasible solution
    ├── SolverError                a solver failed in a way that is not infeasibility
    ├── NothingToLearnError        the input leaves nothing to learn or replay (a refusal)
    └── BundleVerificationError    a bundle's hashes or layout do not check out

Messages say what was wrong, where, and what to do. The root and the client's branches
(``QresError``, ``ConfigError``, ``BundleVerificationError``) are defined in
``qres_client.errors``, so a service that installs only the client catches the same
classes; they are named here too, so pipeline code imports its whole tree from one place.
"""

from __future__ import annotations

from collections.abc import Sequence

from qres_client.errors import BundleVerificationError, ConfigError, QresError

__all__ = [
    "QresError",
    "ConfigError",
    "DataValidationError",
    "InfeasiblePolicyError",
    "SolverError",
    "NothingToLearnError",
    "BundleVerificationError",
    "RuleViolation",
]


class RuleViolation:
    """One broken data rule: where it broke and a few values that broke it."""

    __slots__ = ("table", "column", "rule", "examples", "count", "file")

    def __init__(
        self,
        table: str,
        column: str | None,
        rule: str,
        examples: Sequence[object] = (),
        count: int | None = None,
        file: str | None = None,
    ) -> None:
        self.table = table
        self.column = column
        self.rule = rule
        self.examples = list(examples)[:5]
        self.count = count
        self.file = file

    def __str__(self) -> str:
        where = f"table {self.table!r}"
        if self.column:
            where += f", column {self.column!r}"
        if self.file:
            where += f" (file {self.file})"
        n = f" in {self.count} row(s)" if self.count is not None else ""
        ex = f"; e.g. {', '.join(repr(e) for e in self.examples)}" if self.examples else ""
        return f"{where}: broke rule {self.rule}{n}{ex}"

    def as_dict(self) -> dict[str, object]:
        return {
            "table": self.table,
            "column": self.column,
            "rule": self.rule,
            "examples": [str(e) for e in self.examples],
            "count": self.count,
            "file": self.file,
        }


class DataValidationError(QresError):
    """Telemetry failed validation; nothing may be published from it."""

    def __init__(self, violations: Sequence[RuleViolation], hint: str | None = None) -> None:
        self.violations = list(violations)
        lines = [f"telemetry failed validation ({len(self.violations)} rule(s) broken):"]
        lines += [f"  - {v}" for v in self.violations]
        lines.append(
            hint or "Fix the input files (they were not changed) and run again; the last published bundle stays LATEST."
        )
        super().__init__("\n".join(lines))


class InfeasiblePolicyError(QresError):
    """No decision satisfies the policy's hard constraints."""


class NothingToLearnError(QresError):
    """A refusal: the input is valid but leaves nothing to learn or replay; the message names the cause."""


class SolverError(QresError):
    """A solver failed for a reason other than infeasibility (crash, bad status)."""
