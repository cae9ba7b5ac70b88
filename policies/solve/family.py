"""What the pipeline needs to know about a policy family, and the one way every family is solved.

A :class:`Family` bundles a family's problem loader, solver registry, exact objective,
feasibility and sense. :meth:`Family.solve_each` is the solve path the nightly task, the
re-solve, the backtest and ``qres solve`` all share: the same solvers built the same way and
each problem seeded with :func:`~policies.solve.portfolio.derive_seed` from the run seed and its
content (:func:`~policies.solve.digest.problem_digest`, the key left out), so any one of them can
reproduce another's answer for the same problem, and equal problems under different keys (two
scenarios that block the same workloads) have one answer that can be solved once and shared. The registry of
every family is :mod:`policies.families`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from policies.errors import ConfigError
from policies.solve.anneal import AnnealParams
from policies.solve.digest import problem_digest
from policies.solve.portfolio import PortfolioResult, Solver, derive_seed, rekeyed, solve_portfolio

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
    stop_when_proven: bool = False  # skip the solvers after a proven optimum (solve_portfolio)

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
        from it and the problem's content), ``time_limit_s`` is per solver and problem. Equal problems
        under different keys are solved once; ``progress`` counts the distinct ones."""
        built = self.make_solvers(solvers, anneal)
        digests = [problem_digest(p) for p in problems]
        first: dict[str, int] = {}
        for i, d in enumerate(digests):
            first.setdefault(d, i)
        solved: dict[str, PortfolioResult] = {}
        for i in first.values():  # equal problems are solved once (same content, same seed, same answer)
            problem = problems[i]
            solved[digests[i]] = solve_portfolio(
                problem,
                built,
                objective=self.objective,
                is_feasible=self.is_feasible,
                seed=derive_seed(seed, digests[i]),
                time_limit_s=time_limit_s,
                sense=self.sense,
                top_k=top_k,
                stop_when_proven=self.stop_when_proven,
            )
            if progress is not None:
                progress(len(solved), len(first))
        return [rekeyed(solved[d], str(p.key)) for p, d in zip(problems, digests, strict=True)]

    @staticmethod
    def problem_seed(seed: int, problem: Any) -> int:
        """The solvers' seed for ``problem``: from the run seed and its content, never its name."""
        return derive_seed(seed, problem_digest(problem))

    def solve(self, problem: Any, **kwargs: Any) -> PortfolioResult:
        """:meth:`solve_each` on one problem."""
        return self.solve_each([problem], **kwargs)[0]
