"""CP-SAT as every family runs it: one worker, a deterministic-time budget, a wall-clock safety net.

Why deterministic time: with one worker the search depends only on the model and the seed, so
the same inputs give the same answer on a busy or a quiet machine; wall-clock limits would not.
"""

from __future__ import annotations

__all__ = ["UNITS_PER_S"]

# Deterministic-time units per second of the caller's time limit (measured: one unit took
# 3 to 4.5 s of wall clock on this project's 2-core machines, so the budget stays well inside it).
UNITS_PER_S = 0.25
