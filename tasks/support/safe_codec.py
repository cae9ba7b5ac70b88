"""Encode cache values as JSON and raw array bytes: nothing read back can run code.

Values are trees of ``None``/bool/int/float/str, lists, tuples, dicts, numpy arrays and
scalars, and dataclasses defined under ``policies.`` (results, grids). A dataclass is rebuilt
field by field from its module-qualified name, which must name a dataclass in ``policies.*``
(no other callable is ever looked up). Anything else cannot be encoded: the value is simply
not cached.

An entry is ``MAGIC``, the arrays' raw bytes (each at a 64-byte offset), the JSON tree that
names each array by offset, size, dtype and shape, and the tree's length (8 bytes, little
endian). Arrays are read back with ``np.frombuffer`` under a dtype that may hold no objects.
Why not ``.npy`` in base64 inside the JSON (the first form, still read): base64 and one
``np.load`` header parse per array were most of a re-solve's cache reads (routing's latency
pool: 0.2 s at 40 services, measured).
"""

from __future__ import annotations

import base64
import importlib
import io
import json
import math
from collections.abc import Generator, Iterator
from dataclasses import fields, is_dataclass

import numpy as np

__all__ = ["encode", "encode_chunks", "decode", "CodecError", "MAGIC"]

_ALLOWED_PREFIX = "policies."
MAGIC = b"QRCB1\n"
_ALIGN = 64
_LENGTH = 8


class CodecError(ValueError):
    """A value outside what the cache may hold, or an entry that does not decode."""


def encode(value: object) -> bytes:
    return b"".join(encode_chunks(value))


def encode_chunks(value: object) -> Iterator[bytes]:
    """The entry in pieces: each array's bytes as the tree is walked, then the tree. A large value
    (routing's latency pool: one array per service, 0.7 GB at 1,000 services) is never held as
    one text, nor copied beyond one array at a time."""
    yield MAGIC
    tree = yield from _Writer().node(value)
    text = json.dumps(tree, separators=(",", ":"), allow_nan=True).encode()
    yield text
    yield len(text).to_bytes(_LENGTH, "little")


class _Writer:
    """Walks a value, yielding array bytes and returning its JSON node (generators' return value)."""

    def __init__(self) -> None:
        self.offset = len(MAGIC)

    def node(self, v: object) -> Generator[bytes, None, object]:
        if isinstance(v, (np.ndarray, np.generic)) and _raw(arr := np.asarray(v)):
            if gap := -self.offset % _ALIGN:
                yield bytes(gap)
            data = np.ascontiguousarray(arr).tobytes()
            node = {"$r": [self.offset + gap, len(data)], "d": arr.dtype.str, "s": list(arr.shape)}
            if isinstance(v, np.generic):
                node["0"] = 1  # a numpy scalar, not a 0-d array
            self.offset += gap + len(data)
            yield data
            return node
        if isinstance(v, (list, tuple)):
            items = []
            for x in v:
                items.append((yield from self.node(x)))
            return {"$t": items} if isinstance(v, tuple) else items
        if isinstance(v, dict):
            pairs = []
            for k, x in v.items():
                pairs.append([_enc(k), (yield from self.node(x))])
            return {"$m": pairs}
        if is_dataclass(v) and not isinstance(v, type) and type(v).__module__.startswith(_ALLOWED_PREFIX):
            cls, values = type(v), {}
            for f in fields(v):
                values[f.name] = yield from self.node(getattr(v, f.name))
            return {"$dc": f"{cls.__module__}:{cls.__qualname__}", "f": values}
        return _enc(v)


def _raw(arr: np.ndarray) -> bool:
    """Whether an array goes out as raw bytes: a plain dtype, not Fortran-ordered (those keep
    the ``.npy`` form, which records the order)."""
    fortran = arr.flags.f_contiguous and not arr.flags.c_contiguous
    return arr.dtype.names is None and not arr.dtype.hasobject and not fortran


def decode(data: bytes) -> object:
    try:
        if data.startswith(MAGIC):
            size = int.from_bytes(data[-_LENGTH:], "little")
            end = len(data) - _LENGTH - size
            if size <= 0 or end < len(MAGIC):
                raise ValueError("truncated entry")
            return _dec(json.loads(data[end : len(data) - _LENGTH]), memoryview(data)[:end])
        return _dec(json.loads(data), None)
    except (KeyError, TypeError, ValueError, AttributeError, ImportError) as exc:
        raise CodecError(f"undecodable cache entry: {exc}") from exc


def _array(v: dict, blob: memoryview | None) -> np.ndarray:
    offset, size = v["$r"]
    dtype, shape = np.dtype(v["d"]), tuple(v["s"])
    if blob is None or dtype.hasobject or not 0 <= offset <= offset + size <= len(blob):
        raise ValueError(f"array at {offset} ({v['d']}, {size} bytes) is not readable here")
    if size != math.prod(shape) * dtype.itemsize:
        raise ValueError(f"array of shape {shape} and dtype {v['d']} is not {size} bytes")
    arr = np.frombuffer(blob, dtype=dtype, count=math.prod(shape), offset=offset).reshape(shape).copy()
    return arr[()] if v.get("0") else arr  # copied: writable, and not holding the entry's bytes


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


def _dec(v: object, blob: memoryview | None) -> object:
    if isinstance(v, list):
        return [_dec(x, blob) for x in v]
    if not isinstance(v, dict):
        return v
    if "$r" in v:
        return _array(v, blob)
    if "$a" in v:
        return np.load(io.BytesIO(base64.b64decode(v["$a"])), allow_pickle=False)
    if "$s" in v:
        return np.load(io.BytesIO(base64.b64decode(v["$s"])), allow_pickle=False)[()]
    if "$ao" in v:
        out = np.empty(len(v["$ao"]), dtype=object)
        out[:] = [_dec(x, blob) for x in v["$ao"]]
        return out.reshape(v["shape"])
    if "$t" in v:
        return tuple(_dec(x, blob) for x in v["$t"])
    if "$m" in v:
        return {_dec(k, blob): _dec(x, blob) for k, x in v["$m"]}
    if "$dc" in v:
        return _dataclass(v["$dc"], {k: _dec(x, blob) for k, x in v["f"].items()})
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
