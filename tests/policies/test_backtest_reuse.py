"""The backtest's reuse of the previous run: the same figures as a cold replay, and only what changed replayed."""

from __future__ import annotations

import json
from dataclasses import replace

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from policies.backtest.run import BacktestConfig, run_backtest
from policies.telemetry.ingest import conform_tables, load_telemetry

CFG = BacktestConfig(train_fraction=0.1, solvers=("greedy", "cpsat"), time_limit_s=1.0, sample_max=0)
_COUNTS = ("train", "replayed", "reused")


class MemoryStore:
    """A ReplayStore in memory that counts what it is asked for."""

    def __init__(self) -> None:
        self.entries: dict[str, dict] = {}

    def load(self, keys):
        return {k: json.loads(json.dumps(self.entries[k])) for k in keys if k in self.entries}

    def store(self, figures, keep):
        self.entries = {k: v for k, v in {**self.entries, **figures}.items() if k in set(keep)}


def _figures(result: dict) -> str:
    """The result as the nightly records it (backtest.json), without the reuse counts."""
    return json.dumps({k: v for k, v in result.items() if k not in _COUNTS}, sort_keys=True)


@pytest.fixture(scope="module")
def tables(small_sample):
    return conform_tables(load_telemetry(str(small_sample)).tables)


@pytest.fixture(scope="module")
def cold(tables):
    result = run_backtest(tables, CFG)
    assert result["n_incidents"] >= 3, "the sample must give incidents to reuse"
    return result


def test_a_rerun_reuses_every_incident_with_the_same_bytes(tables, cold) -> None:
    store = MemoryStore()
    first = run_backtest(tables, CFG, reuse=store)
    assert (first["replayed"], first["reused"]) == (cold["n_incidents"], 0)
    second = run_backtest(tables, CFG, reuse=store)
    assert (second["replayed"], second["reused"]) == (0, cold["n_incidents"])
    assert _figures(first) == _figures(cold) == _figures(second)
    assert len(store.entries) == cold["n_incidents"]


def test_only_new_incidents_are_replayed(tables, cold) -> None:
    """A longer history with the same published bundle: the incidents already scored are reused."""
    bundle = {"decisions": cold["train"].decisions, "fallback": cold["train"].fallback, "version": "trained"}
    checks = tables["health_checks"]
    last_start = max(i["start"] for i in cold["incidents"])
    cut = pa.scalar(pd.Timestamp(last_start).to_pydatetime(), checks.schema.field("ts").type)
    shorter = {**tables, "health_checks": checks.filter(pc.less(checks.column("ts"), cut))}
    store = MemoryStore()
    before = run_backtest(shorter, CFG, reuse=store, **bundle)
    after = run_backtest(tables, CFG, reuse=store, **bundle)
    assert _figures(after) == _figures(run_backtest(tables, CFG, **bundle))
    seen = {(i["start"], i["minutes"], tuple(i["states"])) for i in before["incidents"]}
    new = [i for i in after["incidents"] if (i["start"], i["minutes"], tuple(i["states"])) not in seen]
    assert new and after["replayed"] == len(new)
    assert after["reused"] == after["n_incidents"] - len(new) >= 1


def test_a_changed_policy_replays_the_incidents_it_decides_differently(tables, cold) -> None:
    bundle = {"decisions": cold["train"].decisions, "fallback": cold["train"].fallback, "version": "trained"}
    store = MemoryStore()
    run_backtest(tables, CFG, reuse=store, **bundle)
    other = replace(CFG, unmatched="cover")  # the published policy answers unnamed states another way
    changed = run_backtest(tables, other, reuse=store, **bundle)
    fresh = run_backtest(tables, other, **bundle)
    assert _figures(changed) == _figures(fresh)
    moved = [
        a["number"]
        for a, b in zip(cold["incidents"], fresh["incidents"], strict=True)
        if a["policies"]["published"] != b["policies"]["published"]
    ]
    assert moved and changed["replayed"] >= len(moved)
    assert changed["replayed"] + changed["reused"] == fresh["n_incidents"]


def test_changed_backtest_code_replays_everything(tables, cold, monkeypatch) -> None:
    import policies.backtest.reuse as reuse

    bundle = {"decisions": cold["train"].decisions, "fallback": cold["train"].fallback, "version": "trained"}
    store = MemoryStore()
    run_backtest(tables, CFG, reuse=store, **bundle)
    monkeypatch.setattr(reuse, "_code_digest", lambda: "another version of the replay")
    upgraded = run_backtest(tables, CFG, reuse=store, **bundle)
    assert (upgraded["replayed"], upgraded["reused"]) == (cold["n_incidents"], 0)
