"""The solver contract every family implements, the portfolio that runs it, and its conformance checks."""
