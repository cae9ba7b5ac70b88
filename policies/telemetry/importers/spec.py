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
``since``: the first pull's start, for the kinds pulled from a watermark) are kept beside the spec.
Kinds: prometheus, pagerduty, backstage (connectors), files, dataset, url (telemetry tables as
they are), upptime, statuspage, gcp, aws (status histories); :mod:`.land` pulls each.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import time
import types
import typing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from policies.errors import ConfigError

__all__ = ["SourceEntry", "parse_sources", "parse_time", "build_spec", "spec_class", "KINDS", "WATERMARKED"]

_EXTRA = ("into", "since")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
WATERMARKED = ("prometheus", "pagerduty")  # pulled from a watermark: ``since`` is their first start


def _kinds() -> dict[str, type]:
    from policies.telemetry.importers import specs
    from policies.telemetry.importers.backstage import BackstageSpec
    from policies.telemetry.importers.pagerduty import PagerDutySpec
    from policies.telemetry.importers.prometheus import PrometheusSpec

    return {
        "prometheus": PrometheusSpec,
        "pagerduty": PagerDutySpec,
        "backstage": BackstageSpec,
        "files": specs.FilesSpec,
        "dataset": specs.DatasetSpec,
        "url": specs.UrlSpec,
        "upptime": specs.UpptimeSpec,
        "statuspage": specs.StatuspageSpec,
        "gcp": specs.CloudSpec,
        "aws": specs.CloudSpec,
    }


def spec_class(kind: str) -> type:
    """The spec dataclass of a kind (its fields are the entry's keys)."""
    return _kinds()[kind]


KINDS = ("prometheus", "pagerduty", "backstage", "files", "dataset", "url", "upptime", "statuspage", "gcp", "aws")
# What a required key looks like, for the message that asks for it.
_EXAMPLE = {
    ("prometheus", "url"): 'url = "http://prometheus.internal:9090"',
    ("files", "path"): 'path = "exports/telemetry"',
    ("dataset", "path"): 'path = "s3://lake/telemetry"',
    ("url", "url"): 'url = "https://example.com/telemetry.zip"',
    ("upptime", "path"): 'path = "status-repo" (a clone, a .bundle or commits.jsonl)',
    ("statuspage", "path"): 'path = "incidents.jsonl.gz" (a file or URL)',
    ("gcp", "path"): 'path = "https://status.cloud.google.com/incidents.json"',
    ("aws", "path"): 'path = "historyevents.json"',
}


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
        if not _NAME.match(name):
            raise ConfigError(
                f"sources.{name}: a source name is letters, digits, - and _ (it names files in the landing "
                f"folder); rename it, e.g. [sources.{re.sub(r'[^A-Za-z0-9_-]+', '-', name).strip('-') or 'main'}]"
            )
        if not isinstance(entry, dict):
            raise ConfigError(f'sources.{name}: expected a table with kind = ..., got {entry!r}; e.g. kind = "files"')
        entry = dict(entry)
        kind = entry.pop("kind", None)
        extra = {k: entry.pop(k) for k in _EXTRA if k in entry}
        if "since" in extra and kind in KINDS and kind not in WATERMARKED:
            raise ConfigError(
                f"sources.{name}.since: only {' and '.join(WATERMARKED)} sources are pulled from a watermark; "
                f"{kind} sources are read whole each pull; drop since"
            )
        if "since" in extra:
            parse_time(extra["since"], f"sources.{name}.since")
        if "into" in extra and not isinstance(extra["into"], str):
            raise ConfigError(
                f'sources.{name}.into: expected a folder path, got {extra["into"]!r}; e.g. into = "data/landing"'
            )
        out[name] = SourceEntry(name, str(kind), build_spec(kind, entry, f"sources.{name}"), **extra)
    return out


def build_spec(kind: Any, values: dict[str, Any], where: str) -> Any:
    """The kind's spec from plain values (TOML or CLI), each checked against the field's type."""
    kinds = _kinds()
    if kind not in kinds:
        fix = "add" if kind is None else "set"
        raise ConfigError(f'{where}: kind must be one of {", ".join(KINDS)} (got {kind!r}); {fix} e.g. kind = "files"')
    cls = kinds[kind]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        known = sorted([*fields, *_EXTRA])
        near = {u: difflib.get_close_matches(u, known, 1) for u in unknown}
        hint = "; ".join(f"did you mean {m[0]} for {u}?" for u, m in near.items() if m)
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)} for kind {kind!r}; known keys: {', '.join(known)}"
            + (f" ({hint})" if hint else "")
        )
    missing = [
        n
        for n, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and n not in values
    ]
    if missing:
        example = "; ".join(_EXAMPLE.get((kind, m), f"{m} = ...") for m in missing)
        raise ConfigError(f"{where}: {kind} needs {', '.join(missing)}; add e.g. {example}")
    clean = {k: _coerce(v, hints[k], f"{where}.{k}", fields[k]) for k, v in values.items()}
    try:
        return cls(**clean)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _coerce(value: Any, hint: Any, where: str, field: dataclasses.Field) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{where}: expected {expected}, got {value!r}; e.g. {_example(field, hint)}")

    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise bad("a list of strings")
        return tuple(value)
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(v, str | int | bool) for v in value.values()):
            raise bad("a table of key = value")
        return dict(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise bad("true or false")
    if hint in (int, float):
        try:
            num = hint(value)
        except (TypeError, ValueError):
            raise bad("a number") from None
        if isinstance(value, bool) or num < 0 or (num == 0 and not any(k in field.name for k in ("tier", "retries"))):
            raise bad("a positive number")
        return num
    if hint is str and not isinstance(value, str):
        raise bad("a string")
    return value


def _example(field: dataclasses.Field, hint: Any) -> str:
    """``key = <a valid value>``: the default when it has one, else a placeholder of the right type."""
    default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
    if default is dataclasses.MISSING or default in (None, "", (), {}):
        origin = typing.get_origin(hint)
        default = {tuple: ("a", "b"), dict: {"key": "value"}}.get(origin, {int: 60, float: 1.5}.get(hint, "..."))
    if isinstance(default, bool):
        text = str(default).lower()
    elif isinstance(default, tuple | list):
        text = "[" + ", ".join(f'"{v}"' for v in default) + "]"
    elif isinstance(default, dict):
        text = "{ " + ", ".join(f'"{k}" = {v!r}'.replace("'", '"') for k, v in default.items()) + " }"
    elif isinstance(default, str):
        text = f'"{default}"'
    else:
        text = f"{default:g}" if isinstance(default, float) else str(default)
    return f"{field.name} = {text}"


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
