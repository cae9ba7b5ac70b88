"""The solve cache on a shared state folder: a planted pickle never runs, a tampered entry is recomputed."""

from __future__ import annotations

import logging
import os
import pickle
import stat
from pathlib import Path

import numpy as np
import pytest

from policies.solve.portfolio import PolicyResult, SolverInfo
from tasks.support.solve_cache import cache_key_path, load_cached_results, solve_cached, store_cached_results

KEY = "ab" + "0" * 62


class _Boom:
    """Unpickling this calls ``Path.touch`` on the marker: proof of code execution."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _result(x: float) -> PolicyResult:
    info = SolverInfo("cp-sat", "OPTIMAL", x, x, 7, 0.01, {"t": 1.0}, {"ortools": "9"}, extra={"k": (1, 2)})
    return PolicyResult("p", np.array([1, 0, 1], dtype=np.int8), x, True, info)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("QRES_CACHE_KEY_DIR", str(tmp_path / "keys"))
    return tmp_path / "state" / "cache" / "standby"


def test_entries_round_trip_and_the_key_is_private(cache: Path) -> None:
    store_cached_results(cache, {KEY: _result(2.5)})
    got = load_cached_results(cache, [KEY])[KEY]
    assert got.objective == 2.5 and got.solution.dtype == np.int8 and got.solution.tolist() == [1, 0, 1]
    assert got.info.extra == {"k": (1, 2)} and isinstance(got.info, SolverInfo)
    key_file = cache_key_path(cache)
    assert key_file.parent.name == "keys" and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert not list(cache.rglob("*.pkl"))


def test_a_planted_pickle_never_runs(cache: Path, tmp_path: Path, caplog) -> None:
    marker = tmp_path / "pwned"
    (cache / KEY[:2]).mkdir(parents=True)
    (cache / KEY[:2] / f"{KEY}.pkl").write_bytes(pickle.dumps(_Boom(marker)))
    (cache / KEY[:2] / f"{KEY}.json").write_bytes(pickle.dumps(_Boom(marker)))  # under the real name too
    with caplog.at_level(logging.WARNING, logger="qres.cache"):
        value, hit = solve_cached(cache, KEY, lambda: _result(1.0))
    assert not marker.exists(), "the planted pickle ran"
    assert not hit and value.objective == 1.0
    assert "HMAC" in caplog.text
    assert load_cached_results(cache, [KEY])[KEY].objective == 1.0  # recomputed and stored properly


def test_a_tampered_entry_is_ignored_with_a_warning_and_recomputed(cache: Path, caplog) -> None:
    store_cached_results(cache, {KEY: _result(2.5)})
    path = cache / KEY[:2] / f"{KEY}.json"
    path.write_bytes(path.read_bytes().replace(b"2.5", b"9.5"))
    calls = []
    with caplog.at_level(logging.WARNING, logger="qres.cache"):
        value, hit = solve_cached(cache, KEY, lambda: calls.append(1) or _result(2.5))
    assert not hit and calls == [1] and value.objective == 2.5
    assert "fails its HMAC" in caplog.text and str(path) in caplog.text


def test_an_entry_moved_to_another_key_is_refused(cache: Path) -> None:
    other = "cd" + "1" * 62
    store_cached_results(cache, {KEY: _result(2.5)})
    (cache / other[:2]).mkdir()
    os.replace(cache / KEY[:2] / f"{KEY}.json", cache / other[:2] / f"{other}.json")
    assert load_cached_results(cache, [other]) == {}


def test_an_entry_signed_with_another_key_is_refused(cache: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("QRES_CACHE_KEY_DIR", str(tmp_path / "attacker-keys"))
    store_cached_results(cache, {KEY: _result(2.5)})
    monkeypatch.setenv("QRES_CACHE_KEY_DIR", str(tmp_path / "keys"))
    assert load_cached_results(cache, [KEY]) == {}
