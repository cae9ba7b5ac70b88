"""Encode cache values as JSON and ``.npy`` bytes: nothing read back can run code.

Values are trees of ``None``/bool/int/float/str, lists, tuples, dicts, numpy arrays and
scalars, and dataclasses defined under ``policies.`` (results, grids). Arrays are ``.npy``
bytes loaded with ``allow_pickle=False``; a dataclass is rebuilt field by field from its
module-qualified name, which must name a dataclass in ``policies.*`` (no other callable is
ever looked up). Anything else cannot be encoded: the value is simply not cached.
"""

from __future__ import annotations

import base64
import importlib
import io
import json
from collections.abc import Iterator
from dataclasses import fields, is_dataclass

import numpy as np

__all__ = ["encode", "encode_chunks", "decode", "CodecError"]

_ALLOWED_PREFIX = "policies."


class CodecError(ValueError):
    """A value outside what the cache may hold, or an entry that does not decode."""


def encode(value: object) -> bytes:
    return _dumps(_enc(value))


def encode_chunks(value: object, depth: int = 3) -> Iterator[bytes]:
    """``encode(value)`` in pieces, the same bytes joined: containers down to ``depth`` are walked
    here and each piece below is dumped alone, so a large value (routing's latency pool: one array
    per service, 0.7 GB at 1,000 services) is never held as one JSON text, its bytes and a copy."""
    if depth <= 0 or not isinstance(v := value, (dict, list, tuple)):
        yield _dumps(_enc(value))
        return
    head, tail = ('{"$m":[', "]}") if isinstance(v, dict) else ('{"$t":[', "]}") if isinstance(v, tuple) else ("[", "]")
    yield head.encode()
    for i, item in enumerate(v.items() if isinstance(v, dict) else v):
        if i:
            yield b","
        if isinstance(v, dict):
            yield b"[" + _dumps(_enc(item[0])) + b","
            yield from encode_chunks(item[1], depth - 1)
            yield b"]"
        else:
            yield from encode_chunks(item, depth - 1)
    yield tail.encode()


def _dumps(tree: object) -> bytes:
    return json.dumps(tree, separators=(",", ":"), allow_nan=True).encode()


def decode(data: bytes) -> object:
    try:
        return _dec(json.loads(data))
    except (KeyError, TypeError, ValueError, AttributeError, ImportError) as exc:
        raise CodecError(f"undecodable cache entry: {exc}") from exc


def _npy(arr: np.ndarray) -> str:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return base64.b64encode(buf.getvalue()).decode()


def _enc(v: object) -> object:
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, np.ndarray):
        if v.dtype.hasobject:
            return {"$ao": [_enc(x) for x in v.tolist()], "shape": list(v.shape)}
        return {"$a": _npy(v)}
    if isinstance(v, np.generic):
        return {"$s": _npy(np.asarray(v))}
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, tuple):
        return {"$t": [_enc(x) for x in v]}
    if isinstance(v, list):
        return [_enc(x) for x in v]
    if isinstance(v, dict):
        return {"$m": [[_enc(k), _enc(x)] for k, x in v.items()]}
    if is_dataclass(v) and not isinstance(v, type) and type(v).__module__.startswith(_ALLOWED_PREFIX):
        cls = type(v)
        return {
            "$dc": f"{cls.__module__}:{cls.__qualname__}",
            "f": {f.name: _enc(getattr(v, f.name)) for f in fields(v)},
        }
    raise CodecError(f"cannot cache a {type(v).__name__}")


def _dec(v: object) -> object:
    if isinstance(v, list):
        return [_dec(x) for x in v]
    if not isinstance(v, dict):
        return v
    if "$a" in v:
        return np.load(io.BytesIO(base64.b64decode(v["$a"])), allow_pickle=False)
    if "$s" in v:
        return np.load(io.BytesIO(base64.b64decode(v["$s"])), allow_pickle=False)[()]
    if "$ao" in v:
        out = np.empty(len(v["$ao"]), dtype=object)
        out[:] = [_dec(x) for x in v["$ao"]]
        return out.reshape(v["shape"])
    if "$t" in v:
        return tuple(_dec(x) for x in v["$t"])
    if "$m" in v:
        return {_dec(k): _dec(x) for k, x in v["$m"]}
    if "$dc" in v:
        return _dataclass(v["$dc"], {k: _dec(x) for k, x in v["f"].items()})
    raise CodecError(f"unknown tag in {sorted(v)[:3]}")


def _dataclass(name: str, values: dict) -> object:
    module, _, qualname = name.partition(":")
    if not module.startswith(_ALLOWED_PREFIX) or "." in qualname:
        raise CodecError(f"type {name!r} is not cacheable")
    cls = getattr(importlib.import_module(module), qualname)
    if not (isinstance(cls, type) and is_dataclass(cls)) or set(values) != {f.name for f in fields(cls)}:
        raise CodecError(f"{name!r} is not a dataclass with these fields")
    obj = object.__new__(cls)  # as pickle does: no __init__, fields as stored
    for key, value in values.items():
        object.__setattr__(obj, key, value)
    return obj
