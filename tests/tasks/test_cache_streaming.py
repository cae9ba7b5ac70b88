"""The solve cache streams its entries: the same bytes as encoding the whole value at once."""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pytest

from policies.backtest.config import BacktestConfig
from tasks.support.safe_codec import CodecError, decode, encode, encode_chunks
from tasks.support.solve_cache import cache_secret, load_cached_results, store_cached_results

VALUES = [
    None,
    3.5,
    float("nan"),
    "text",
    [],
    {},
    (),
    [1, (2, 3), {"a": [np.arange(4)], 5: None}],
    {"snapshot": "abc", "pool": {f"svc-{i}": (np.linspace(0, 1, 7 + i), 0.25 * i) for i in range(5)}},
    ({"nested": {"deeper": {"deepest": (np.float32(1.5), [np.zeros((2, 3))])}}},),
    {"config": BacktestConfig(), "many": [BacktestConfig(), (BacktestConfig(),)]},
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_the_pieces_join_to_the_whole_encoding_and_decode_back(value):
    joined = b"".join(encode_chunks(value))
    assert joined == encode(value)
    back = decode(joined)
    assert encode(back) == encode(value)


def test_a_streamed_entry_carries_the_mac_of_its_payload_and_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("QRES_CACHE_KEY_DIR", str(tmp_path / "keys"))
    cache = tmp_path / "cache" / "routing"
    pool = {f"svc-{i}": (np.sort(np.random.default_rng(i).random(1000)), 0.1) for i in range(20)}
    key = "ab" + "0" * 62
    store_cached_results(cache, {key: {"snapshot": "s1", "pool": pool}})
    data = (cache / "ab" / f"{key}.json").read_bytes()
    head, _, payload = data.partition(b"\n")
    assert payload == encode({"snapshot": "s1", "pool": pool})
    expect = hmac.new(cache_secret(cache), key.encode() + b"\n" + payload, hashlib.sha256).hexdigest().encode()
    assert head == expect
    got = load_cached_results(cache, [key])[key]
    assert got["snapshot"] == "s1" and set(got["pool"]) == set(pool)
    assert all(np.array_equal(got["pool"][s][0], pool[s][0]) for s in pool)


def test_a_value_the_cache_cannot_hold_leaves_no_entry_and_no_temp_file(tmp_path, monkeypatch):
    monkeypatch.setenv("QRES_CACHE_KEY_DIR", str(tmp_path / "keys"))
    cache = tmp_path / "cache" / "x"
    with pytest.raises(CodecError):
        b"".join(encode_chunks({"ok": 1, "bad": object()}))
    store_cached_results(cache, {"cd" + "1" * 62: {"ok": 1, "bad": object()}})
    assert list((cache / "cd").iterdir()) == []
