"""One way to declare a source: a ``[sources.<name>]`` table in qres.toml, or the same keys on the CLI.

Every entry has a ``kind`` and that kind's keys (the fields of its spec dataclass); unknown
keys, wrong types and missing required keys are refused on load with the key, what was
expected and the keys that exist. Example::

    [sources.blackbox]
    kind = "prometheus"
    url = "http://prometheus.internal:9090"
    since = "2026-08-01"          # where the first pull starts; later pulls start at the watermark
    step_s = 60

Connector-only keys (``into``: the landing folder a pull writes, default ``data_dir``;
``since``: the first pull's start) are kept beside the spec.
"""

from __future__ import annotations

import dataclasses
import re
import time
import types
import typing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from policies.errors import ConfigError

__all__ = ["SourceEntry", "parse_sources", "parse_time", "build_spec", "KINDS"]

_EXTRA = ("into", "since")


def _kinds() -> dict[str, type]:
    from policies.telemetry.importers.backstage import BackstageSpec
    from policies.telemetry.importers.pagerduty import PagerDutySpec
    from policies.telemetry.importers.prometheus import PrometheusSpec

    return {"prometheus": PrometheusSpec, "pagerduty": PagerDutySpec, "backstage": BackstageSpec}


KINDS = ("prometheus", "pagerduty", "backstage")


@dataclass(frozen=True)
class SourceEntry:
    name: str
    kind: str
    spec: Any
    into: str | None = None
    since: str | None = None


def parse_sources(raw: dict[str, Any]) -> dict[str, SourceEntry]:
    """Validate every ``[sources.<name>]`` entry; the first problem raises a ConfigError."""
    out = {}
    for name, entry in sorted((raw or {}).items()):
        if not isinstance(entry, dict):
            raise ConfigError(f"sources.{name}: expected a table with kind = ..., got {entry!r}")
        entry = dict(entry)
        kind = entry.pop("kind", None)
        extra = {k: entry.pop(k) for k in _EXTRA if k in entry}
        if "since" in extra:
            parse_time(extra["since"], f"sources.{name}.since")
        out[name] = SourceEntry(name, str(kind), build_spec(kind, entry, f"sources.{name}"), **extra)
    return out


def build_spec(kind: Any, values: dict[str, Any], where: str) -> Any:
    """The kind's spec from plain values (TOML or CLI), each checked against the field's type."""
    kinds = _kinds()
    if kind not in kinds:
        raise ConfigError(
            f'{where}: kind must be one of {", ".join(KINDS)} (got {kind!r}); add e.g. kind = "prometheus"'
        )
    cls = kinds[kind]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)} for kind {kind!r}; known keys: "
            f"{', '.join(sorted([*fields, *_EXTRA]))}"
        )
    missing = [
        n
        for n, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and n not in values
    ]
    if missing:
        raise ConfigError(f'{where}: {kind} needs {", ".join(missing)} (e.g. url = "http://host:port")')
    clean = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in values.items()}
    try:
        return cls(**clean)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
        return tuple(value)
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(v, str | int | bool) for v in value.values()):
            raise ConfigError(f"{where}: expected a table of key = value, got {value!r}")
        return dict(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if hint in (int, float):
        try:
            num = hint(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if num < 0 or (num == 0 and not any(k in where.rsplit(".", 1)[-1] for k in ("tier", "retries"))):
            raise ConfigError(f"{where}: must be positive, got {value!r}")
        return num
    if hint is str and not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


_REL = re.compile(r"^-?(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(text: Any, where: str = "time", now_s: float | None = None) -> int:
    """Epoch ms from ISO 8601 (``2026-08-11``, ``2026-08-11T06:00:00Z``), ``now`` or ``-14d``/``2h`` ago."""
    now = time.time() if now_s is None else now_s
    if isinstance(text, datetime):
        return int(text.timestamp() * 1000)
    s = str(text).strip()
    if s == "now":
        return int(now * 1000)
    m = _REL.match(s)
    if m:
        return int((now - float(m.group(1)) * _UNIT_S[m.group(2)]) * 1000)
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{where}: {s!r} is not a time; use ISO 8601 (2026-08-11 or 2026-08-11T06:00:00Z), now, or 14d (ago)"
        ) from None
    return int((dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp() * 1000)
