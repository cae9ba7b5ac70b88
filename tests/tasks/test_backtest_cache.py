"""The nightly's backtest reuse on disk: HMAC'd replays in the state folder, the past's solves from the solve cache."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import tasks.solve
from policies.backtest.run import run_backtest
from policies.telemetry.ingest import conform_tables, load_telemetry
from tasks.backtest import StoredReplays, cached_solve
from tasks.support.solve_cache import KEY_DIR_ENV, entry_paths
from tests.policies.test_backtest_reuse import CFG, _figures


@pytest.fixture(scope="module")
def tables(small_sample):
    return conform_tables(load_telemetry(str(small_sample)).tables)


@pytest.fixture
def state(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv(KEY_DIR_ENV, str(tmp_path / "keys"))
    return tmp_path / "cache"


def test_stored_replays_are_reused_and_a_tampered_one_is_replayed(tables, state, caplog) -> None:
    bundle = run_backtest(tables, CFG)["train"]
    given = {"decisions": bundle.decisions, "fallback": bundle.fallback, "version": "trained"}
    store = StoredReplays(state / "backtest")
    first = run_backtest(tables, CFG, reuse=store, **given)
    entries = entry_paths(state / "backtest")
    assert len(entries) == first["n_incidents"] == first["replayed"] >= 3
    head, _, payload = entries[0].read_bytes().partition(b"\n")
    entries[0].write_bytes(head + b"\n" + payload.replace(b'"value"', b'"valve"', 1))
    with caplog.at_level(logging.WARNING, logger="qres.cache"):
        second = run_backtest(tables, CFG, reuse=store, **given)
    assert "fails its HMAC" in caplog.text
    assert (second["replayed"], second["reused"]) == (1, first["n_incidents"] - 1)
    assert _figures(second) == _figures(first)


def test_the_past_is_solved_once_then_answered_from_the_solve_cache(tables, state, monkeypatch) -> None:
    cold = run_backtest(tables, CFG)
    solve = cached_solve({"shedding": state / "shedding", "horizon": state / "horizon"})
    first = run_backtest(tables, CFG, solve=solve)
    assert len(entry_paths(state / "shedding")) == len(cold["train"].scenarios.scenarios)
    solved = []
    original = tasks.solve.store_cached_results
    monkeypatch.setattr(tasks.solve, "store_cached_results", lambda d, r: (solved.append(len(r)), original(d, r)))
    second = run_backtest(tables, CFG, solve=solve)
    assert solved and not any(solved)  # every shedding and horizon problem of the past came from the cache
    for run in (first, second):
        assert run["train"].files == cold["train"].files  # the trained bundle, byte for byte
        assert _figures(run) == _figures(cold)
