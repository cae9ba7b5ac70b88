"""What the pipeline needs to know about a policy family, and the one way every family is solved.

A :class:`Family` bundles a family's problem loader, solver registry, exact objective,
feasibility and sense. :meth:`Family.solve_each` is the solve path the nightly task, the
re-solve, the backtest and ``qres solve`` all share: the same solvers built the same way and
each problem seeded with :func:`~policies.solve.portfolio.derive_seed` from the run seed and its
key, so any one of them can reproduce another's answer for the same problem. The registry of
every family is :mod:`policies.families`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from policies.errors import ConfigError
from policies.solve.anneal import AnnealParams
from policies.solve.portfolio import PortfolioResult, Solver, derive_seed, solve_portfolio

__all__ = ["Family"]


@dataclass(frozen=True)
class Family:
    name: str
    from_dict: Callable[[dict], Any]  # the documented problem file (data/examples/<name>.json) -> problem
    solvers: Mapping[str, Callable[..., Solver]]  # name -> solver class (``anneal`` takes AnnealParams fields)
    objective: Callable[[Any, np.ndarray], float]
    is_feasible: Callable[[Any, np.ndarray], bool]
    sense: Literal["max", "min"]
    default_solvers: tuple[str, ...]
    variables: Callable[[Any], Sequence[str]]  # the decision variables' names, in solution order

    def make_solvers(
        self, names: Sequence[str | Solver] | None = None, anneal: AnnealParams | None = None
    ) -> list[Solver]:
        """Solvers by name (a solver object passes as is); ``anneal`` configures the ``anneal`` solver."""
        names = self.default_solvers if names is None else tuple(names)
        bad = [n for n in names if isinstance(n, str) and n not in self.solvers]
        if bad:
            raise ConfigError(f"unknown {self.name} solver(s) {bad}; choose from {', '.join(self.solvers)}")
        built = []
        for n in names:
            if not isinstance(n, str):
                built.append(n)
            elif n == "anneal" and anneal is not None:
                built.append(self.solvers[n](**anneal.as_dict()))
            else:
                built.append(self.solvers[n]())
        return built

    def solve_each(
        self,
        problems: Sequence[Any],
        *,
        seed: int,
        time_limit_s: float,
        solvers: Sequence[str | Solver] | None = None,
        anneal: AnnealParams | None = None,
        top_k: int = 3,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[PortfolioResult]:
        """The portfolio on every problem, in order; ``seed`` is the run seed (each problem's is derived
        from it and the problem's key), ``time_limit_s`` is per solver and problem."""
        built = self.make_solvers(solvers, anneal)
        out = []
        for i, problem in enumerate(problems):
            out.append(
                solve_portfolio(
                    problem,
                    built,
                    objective=self.objective,
                    is_feasible=self.is_feasible,
                    seed=derive_seed(seed, problem.key),
                    time_limit_s=time_limit_s,
                    sense=self.sense,
                    top_k=top_k,
                )
            )
            if progress is not None:
                progress(i + 1, len(problems))
        return out

    def solve(self, problem: Any, **kwargs: Any) -> PortfolioResult:
        """:meth:`solve_each` on one problem."""
        return self.solve_each([problem], **kwargs)[0]
