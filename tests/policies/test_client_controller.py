"""The client's Controller: act_after_s (wait before shedding) and hold_s (no re-admission too soon)."""

from __future__ import annotations

from types import MappingProxyType

import pyarrow as pa
import pytest

from qres_client.bundle import encode_parquet
from qres_client.controller import Controller
from qres_client.decision import Action, Decision
from qres_client.index import build_index
from qres_client.schema import DECISIONS_SHEDDING_TIMED


def _plans(act_after_s: float = 300.0, hold_s: float = 600.0) -> pa.Table:
    """normal admits both; down=db sheds w1 after ``act_after_s`` and w2 at once."""
    rows = []
    for key, down, admits, waits in (
        ("normal", [], (1.0, 1.0), (0.0, 0.0)),
        ("down=db", ["db"], (0.0, 0.5), (act_after_s, 0.0)),
        ("fallback:all-down", ["db"], (0.0, 0.0), (0.0, 0.0)),
    ):
        for rank, (w, admit, wait) in enumerate(zip(("w1", "w2"), admits, waits), start=1):
            rows.append(
                {
                    "scenario_key": key,
                    "down": down,
                    "degraded": [],
                    "effective_down": ["db", "w1", "w2"] if key.startswith("fallback") else down,
                    "probability": 0.5,
                    "workload_id": w,
                    "admit": admit,
                    "rank": rank,
                    "act_after_s": wait,
                    "hold_s": hold_s,
                }
            )
    return pa.Table.from_pylist(rows, schema=DECISIONS_SHEDDING_TIMED)


def _controller(**kw) -> Controller:
    index = build_index("shedding", "v000001", {}, {"decisions.parquet": encode_parquet(_plans(**kw))})
    return Controller(lambda down, degraded: index.decide(frozenset(down), frozenset(degraded)))


def _shares(d: Decision) -> dict:
    return {a.workload_id: a.admit for a in d.actions}


def test_act_after_rides_out_a_short_outage_and_sheds_a_long_one() -> None:
    ctl = _controller()
    assert _shares(ctl.step(0.0)) == {"w1": 1.0, "w2": 1.0}
    d = ctl.step(10.0, down=["db"])
    assert _shares(d) == {"w1": 1.0, "w2": 0.5}  # w2 sheds at once, w1 waits 300 s
    assert {a.workload_id: a.extras["target"] for a in d.actions} == {"w1": 0.0, "w2": 0.5}
    assert _shares(ctl.step(309.0, down=["db"]))["w1"] == 1.0
    assert _shares(ctl.step(310.0, down=["db"]))["w1"] == 0.0  # 300 s after the state was first seen
    # a short outage: back to normal before act_after, w1 never switched
    ctl2 = _controller()
    ctl2.step(0.0)
    ctl2.step(10.0, down=["db"])
    assert _shares(ctl2.step(200.0)) == {"w1": 1.0, "w2": 0.5}  # w2 is held (switched at 10 s)
    assert _shares(ctl2.step(610.0)) == {"w1": 1.0, "w2": 1.0}  # hold_s 600 after its switch


def test_hold_stops_thrash_on_a_flapping_dependency() -> None:
    ctl = _controller(act_after_s=0.0, hold_s=600.0)
    ctl.step(0.0)
    switches, last = 0, None
    for t in range(0, 1200, 60):  # db flaps every minute for 20 minutes
        shares = _shares(ctl.step(float(t) + 1, down=["db"] if (t // 60) % 2 == 0 else []))
        switches += last is not None and shares != last
        last = shares
    # shed once, then re-admitted only every hold_s: at most 1 + 2 * (1200 / 600) changes, not 20
    assert 1 <= switches <= 5
    # without a hold the same flapping switches every minute
    free = _controller(act_after_s=0.0, hold_s=0.0)
    free.step(0.0)
    changes, last = 0, None
    for t in range(0, 1200, 60):
        shares = _shares(free.step(float(t) + 1, down=["db"] if (t // 60) % 2 == 0 else []))
        changes += last is not None and shares != last
        last = shares
    assert changes == 19


def test_plans_without_timing_switch_at_once_and_time_must_not_go_back() -> None:
    plain = Decision("shedding", "v1", "down=x", True, (Action("w", 0.25, 1, MappingProxyType({})),))
    full = Decision("shedding", "v1", "normal", True, (Action("w", 1.0, 1, MappingProxyType({})),))
    seq = iter([full, plain, full])
    ctl = Controller(lambda down, degraded: next(seq))
    assert _shares(ctl.step(0.0)) == {"w": 1.0}
    assert _shares(ctl.step(1.0)) == {"w": 0.25}
    assert _shares(ctl.step(2.0)) == {"w": 1.0} and ctl.shares == {"w": 1.0}
    with pytest.raises(ValueError, match="backwards"):
        ctl.step(1.0)


def test_settled_means_another_step_on_the_same_state_changes_nothing() -> None:
    import copy

    ctl = _controller(act_after_s=300.0, hold_s=600.0)
    assert Controller.settled(ctl.step(0.0))  # the normal plan, first sight: nothing to wait for
    assert not Controller.settled(ctl.step(10.0, down=["db"]))  # w1 waits for act_after_s
    assert Controller.settled(ctl.step(310.0, down=["db"]))
    assert not Controller.settled(ctl.step(320.0))  # re-admitting waits for the holds
    seen = {True: 0, False: 0}
    for t in range(330, 4000, 50):  # whenever settled, a later step on the same state gives the same shares
        down = ["db"] if (t // 700) % 2 else []
        d = ctl.step(float(t), down=down)
        seen[Controller.settled(d)] += 1
        if Controller.settled(d):
            later = copy.deepcopy(ctl)
            again = later.step(float(t) + 10_000.0, down=down)
            assert _shares(again) == _shares(d) and Controller.settled(again)
            assert later.shares == ctl.shares
    assert seen[True] and seen[False]
