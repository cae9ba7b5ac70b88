"""The portfolio contract, on a toy family whose answers are known by construction."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pytest

import policies.solve.portfolio as solvers_mod
from policies.errors import InfeasiblePolicyError, SolverError
from policies.solve.portfolio import PolicyResult, SolverInfo, derive_seed, solve_portfolio
from policies.solve.testing import assert_portfolio_consistent


@dataclass(frozen=True)
class Toy:
    """Choose x in {0..9}; objective x; feasible iff x <= limit."""

    key: str
    limit: int


def toy_objective(p: Toy, x: np.ndarray) -> float:
    return float(x[0])


def toy_feasible(p: Toy, x: np.ndarray) -> bool:
    return int(x[0]) <= p.limit


class Fixed:
    """Answers a fixed x; can lie about its objective and carry a bound."""

    def __init__(self, name: str, x: int, *, status="HEURISTIC", bound=None, claimed=None):
        self.name, self.x, self.status, self.bound, self.claimed = name, x, status, bound, claimed

    def solve(self, p, *, seed, time_limit_s):
        obj = float(self.x if self.claimed is None else self.claimed)
        info = SolverInfo(self.name, self.status, obj, self.bound, seed, 0.0, {}, {})
        return PolicyResult(p.key, np.array([self.x]), obj, True, info)


class Boom:
    name = "boom"

    def solve(self, p, *, seed, time_limit_s):
        raise RuntimeError("bug in solver")


def run(p, solvers, **kw):
    return solve_portfolio(
        p, solvers, objective=toy_objective, is_feasible=toy_feasible, seed=kw.pop("seed", 1), time_limit_s=1.0, **kw
    )


def test_best_is_highest_feasible_and_reevaluated():
    p = Toy("t", limit=5)
    # "liar" claims 100 but its x is 3; "over" is infeasible despite the highest x.
    res = run(p, [Fixed("liar", 3, claimed=100), Fixed("over", 9), Fixed("good", 5), Fixed("low", 1)])
    assert res.chosen == "good" and res.best.objective == 5.0
    liar = res.candidates[0]
    assert liar.objective == 3.0 and liar.info.objective == 3.0
    assert not res.candidates[1].feasible
    assert [c.info.solver for c in res.candidates] == ["liar", "over", "good", "low"]
    assert_portfolio_consistent(res, p, objective=toy_objective, is_feasible=toy_feasible)


def test_min_sense_picks_lowest():
    res = run(Toy("t", 5), [Fixed("a", 4), Fixed("b", 2)], sense="min")
    assert res.chosen == "b"


def test_ties_go_to_the_earlier_solver():
    p = Toy("t", 9)
    assert run(p, [Fixed("first", 4), Fixed("second", 4)]).chosen == "first"
    assert run(p, [Fixed("second", 4), Fixed("first", 4)]).chosen == "second"


def test_top_k_alternatives_are_distinct_and_ranked():
    p = Toy("t", 9)
    cands = [Fixed("a", 2), Fixed("b", 7), Fixed("c", 7), Fixed("d", 5), Fixed("e", 3)]
    res = run(p, cands, top_k=3)
    assert [a.info.solver for a in res.alternatives] == ["b", "d", "e"]
    assert len(run(p, cands, top_k=1).alternatives) == 1


def test_gap_from_tightest_bound_and_zero_when_proven():
    p = Toy("t", 9)
    res = run(p, [Fixed("h", 6, bound=10.0), Fixed("f", 5, status="FEASIBLE", bound=8.0)])
    assert res.bound == 8.0
    assert res.gap == pytest.approx((8.0 - 6.0) / 8.0)
    proven = run(p, [Fixed("h", 6, bound=10.0), Fixed("o", 6, status="OPTIMAL", bound=6.0)])
    assert proven.gap == 0.0 and proven.chosen == "h"
    assert run(p, [Fixed("h", 6)]).gap is None


def test_failing_solver_is_recorded_and_logged(caplog):
    p = Toy("t", 9)
    with caplog.at_level(logging.ERROR, logger="policies.solve.portfolio"):
        res = run(p, [Boom(), Fixed("ok", 4)])
    assert res.chosen == "ok"
    err = res.candidates[0]
    assert err.info.status == "ERROR" and "bug in solver" in err.info.message and not err.feasible
    assert "boom" in caplog.text


def test_all_failing_raises_solver_error():
    with pytest.raises(SolverError, match="bug in solver"):
        run(Toy("t", 9), [Boom(), Boom()])


def test_no_feasible_raises_naming_key_and_statuses():
    with pytest.raises(InfeasiblePolicyError) as exc:
        run(Toy("scenario-x", 1), [Fixed("a", 4), Boom()])
    msg = str(exc.value)
    assert "scenario-x" in msg and "a=HEURISTIC" in msg and "boom=ERROR" in msg


@pytest.mark.parametrize("kw", [{"sense": "up"}, {"top_k": 0}, {"time_limit_s": 0.0}])
def test_bad_arguments(kw):
    with pytest.raises(ValueError):
        solve_portfolio(
            Toy("t", 9),
            [Fixed("a", 1)],
            objective=toy_objective,
            is_feasible=toy_feasible,
            seed=1,
            **{"time_limit_s": 1.0, **kw},
        )


def test_no_solvers_is_a_value_error():
    with pytest.raises(ValueError):
        run(Toy("t", 9), [])


def test_derive_seed_is_stable_bounded_and_spread():
    seeds = {derive_seed(7, f"s{i}") for i in range(500)}
    assert len(seeds) == 500 and all(0 <= s < 2**31 for s in seeds)
    assert derive_seed(7, "a") == derive_seed(7, "a") != derive_seed(8, "a")


def test_public_api_is_declared():
    for name in solvers_mod.__all__:
        assert hasattr(solvers_mod, name)
