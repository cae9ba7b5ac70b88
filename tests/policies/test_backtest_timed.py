"""The backtest replays a timed bundle exactly as the client's Controller applies it."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from policies.backtest.policies import PublishedPolicy
from policies.backtest.timed import TimedPublishedPolicy, published_policy
from policies.shedding.problem import SheddingProblem
from qres_client.bundle import encode_parquet
from qres_client.index import build_index
from tests.policies.test_client_controller import _plans


def _view(down=()):
    p = SheddingProblem("v", ("w1", "w2"), np.ones(2), np.zeros(2), np.ones(2), np.zeros(2), np.ones(2, bool), 2.0, 2)
    key = ",".join(down) or "normal"
    return SimpleNamespace(problem=p, down=frozenset(down), degraded=frozenset(), key=key)


def test_the_timed_published_policy_waits_and_the_plain_one_does_not() -> None:
    index = build_index("shedding", "v000001", {}, {"decisions.parquet": encode_parquet(_plans(act_after_s=300.0))})
    timed = published_policy(index, "greedy", window_min=1)
    assert isinstance(timed, TimedPublishedPolicy)
    timed.reset()
    levels = [timed.step(-1, _view()).levels.tolist()]
    levels += [timed.step(w, _view(["db"])).levels.tolist() for w in range(7)]
    # w2 sheds to half at once; w1 keeps its share until 300 s (5 windows) after the state was first seen
    assert levels == [[2, 2]] + [[2, 1]] * 5 + [[0, 1]] * 2
    assert timed.matched["db"] == "down=db"
    plain = PublishedPolicy(index, "greedy")
    assert plain.step(0, _view(["db"])).levels.tolist() == [0, 1]
    timed.reset()  # a new incident starts from the normal plan again
    timed.step(-1, _view())
    assert timed.step(0, _view(["db"])).levels.tolist() == [2, 1]


def test_a_bundle_without_the_time_rule_replays_statelessly() -> None:
    from tests.policies.test_client import decisions_table

    index = build_index("shedding", "v000001", {}, {"decisions.parquet": encode_parquet(decisions_table())})
    assert type(published_policy(index, "greedy", window_min=1)) is PublishedPolicy


def test_a_settled_state_is_answered_without_stepping_the_controller_and_the_same_as_stepping_it() -> None:
    """The catalog hands the same view object for a repeated state: once settled, the answer is reused."""
    index = build_index("shedding", "v000001", {}, {"decisions.parquet": encode_parquet(_plans(act_after_s=240.0))})
    normal, db = _view(), _view(["db"])
    # a wait (w1 sheds after 4 windows), a hold (re-admitting after the switch), a flap back and forth
    script = [normal] + [db] * 9 + [normal] * 14 + [db] * 2 + [normal] * 3 + [db] * 12

    def run(views) -> tuple[list, int]:
        timed = published_policy(index, "greedy", window_min=1)
        calls = []
        decide = timed._decide
        timed._decide = lambda down, degraded: calls.append(1) or decide(down, degraded)
        timed.reset()
        out = [timed.step(w - 1, v) for w, v in enumerate(views)]
        return [(d.levels.tolist(), d.priority.tolist()) for d in out], len(calls)

    fast, steps = run(script)
    plain, every = run([_view(sorted(v.down)) for v in script])  # a new view object each window: never reused
    assert fast == plain
    assert every == len(script) and steps < every - 15  # the settled stretches of the long states
    assert [levels for levels, _ in fast[1:10]] == [[2, 1]] * 4 + [[0, 1]] * 5  # the wait is kept
