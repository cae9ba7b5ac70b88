"""The solve cache streams its entries: the same bytes as encoding the whole value at once."""

from __future__ import annotations

import hashlib
import hmac
import json

import numpy as np
import pytest

from policies.backtest.config import BacktestConfig
from tasks.support.safe_codec import CodecError, _npy, decode, encode, encode_chunks
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


ARRAYS = [
    np.arange(12, dtype=np.int64).reshape(3, 4),
    np.zeros(0),
    np.array(["a", "bcd"]),
    np.array([True, False]),
    np.arange(3, dtype=">i4"),
    np.array(["2026-12-07T00:00"], dtype="datetime64[ns]"),
    np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    np.arange(10.0)[::3],  # a strided view
    np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")]),
    np.array(5.5),
    np.float32(1.5),
    np.int64(7),
]


@pytest.mark.parametrize("arr", ARRAYS, ids=range(len(ARRAYS)))
def test_arrays_and_scalars_come_back_with_their_values_dtype_shape_and_kind(arr):
    back = decode(encode({"x": arr}))["x"]
    assert type(back) is type(arr) and back.dtype == arr.dtype and np.shape(back) == np.shape(arr)
    assert np.array_equal(back, arr)
    if isinstance(back, np.ndarray):
        assert back.flags.writeable and back.flags.c_contiguous != (arr.ndim > 1 and arr.flags.f_contiguous)


def test_raw_arrays_are_aligned_and_entries_of_the_first_form_still_decode():
    entry = encode([np.arange(3, dtype=np.int8), np.arange(5.0)])
    tree = json.loads(entry[-8 - int.from_bytes(entry[-8:], "little") : -8])
    assert [node["$r"][0] % 64 for node in tree] == [0, 0]
    first_form = json.dumps({"$m": [["pool", {"$a": _npy(np.arange(4.0))}], ["n", {"$s": _npy(np.asarray(2))}]]})
    old = decode(first_form.encode())
    assert np.array_equal(old["pool"], np.arange(4.0)) and old["n"] == 2


@pytest.mark.parametrize(
    "damage",
    [
        lambda e: e[:-3],  # truncated
        lambda e: e.replace(b'"d":"<f8"', b'"d":"|O8"'),  # an object dtype
        lambda e: e.replace(b'"s":[5]', b'"s":[500]'),  # more elements than bytes
        lambda e: e.replace(b'"$r":[64,', b'"$r":[9999999,'),  # outside the entry
    ],
    ids=["truncated", "object-dtype", "shape", "offset"],
)
def test_a_damaged_entry_is_a_codec_error_not_a_crash(damage):
    entry = encode({"x": np.arange(5.0)})
    bad = damage(entry)
    assert bad != entry
    with pytest.raises(CodecError):
        decode(bad)
