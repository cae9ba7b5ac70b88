"""The few settings the bundle reader's commands need (``decide``, ``verify``, ``versions``).

Those commands read the store, its public key and ``bundle.allow_unsigned``, nothing else.
Building the full ``flows.settings.Settings`` imports pydantic-settings and every section's
model, about a quarter of ``qres decide``'s start-up (docs/performance.md). This reads the
same sources with the same precedence (overrides, ``QRES_*`` variables, the config file,
the defaults) for those fields only, so an operator can still ask for a decision when an
unrelated section of ``qres.toml`` is broken. ``tests/flows/test_store_settings.py`` checks
it against ``load_settings`` field by field.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policies.errors import ConfigError

__all__ = ["StoreSettings", "load_store_settings"]

CONFIG_FILE_NAME = "qres.toml"  # flows.settings.CONFIG_FILE_NAME (checked by the test)
_DEFAULTS: dict[str, Any] = {"store_dir": "bundles", "state_dir": ".qres", "bundle": {}}
_PREFIX = "qres_"


@dataclass(frozen=True)
class BundleView:
    key_dir: Path
    allow_unsigned: bool


@dataclass(frozen=True)
class StoreSettings:
    """Duck-types the parts of ``Settings`` the store commands read (absolute paths)."""

    store_dir: Path
    state_dir: Path
    bundle: BundleView


def _environment() -> dict[str, Any]:
    """``QRES_*`` variables as pydantic-settings reads them: names case-insensitive, ``__`` nests,
    a whole section as JSON (``QRES_BUNDLE='{"allow_unsigned": true}'``)."""
    env = {k.lower(): v for k, v in os.environ.items() if k.lower().startswith(_PREFIX)}
    got: dict[str, Any] = {k: env[_PREFIX + k] for k in ("store_dir", "state_dir") if _PREFIX + k in env}
    bundle: dict[str, Any] = {}
    if _PREFIX + "bundle" in env:
        try:
            whole = json.loads(env[_PREFIX + "bundle"])
        except json.JSONDecodeError as exc:
            raise ConfigError(f"QRES_BUNDLE is not JSON: {exc}") from None
        bundle.update(whole if isinstance(whole, dict) else {})
    for key in ("key_dir", "allow_unsigned"):
        if f"{_PREFIX}bundle__{key}" in env:
            bundle[key] = env[f"{_PREFIX}bundle__{key}"]
    if bundle:
        got["bundle"] = bundle
    return got


def _merge(low: dict[str, Any], high: dict[str, Any]) -> dict[str, Any]:
    merged = dict(low)
    for k, v in high.items():
        merged[k] = _merge(merged[k], v) if isinstance(v, dict) and isinstance(merged.get(k), dict) else v
    return merged


def _flag(value: Any, where: str) -> bool:
    """pydantic's lax bool: true/false, 1/0, yes/no, on/off, t/f, y/n (any case)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "t", "yes", "y", "on"):
        return True
    if text in ("0", "false", "f", "no", "n", "off"):
        return False
    raise ConfigError(f"invalid settings from {where}: bundle.allow_unsigned: not a boolean (got {value!r})")


def load_store_settings(config: str | Path | None = None, store_dir: Path | None = None) -> StoreSettings:
    """``load_settings(config, store_dir=...)``'s store, state, key folder and ``allow_unsigned``."""
    explicit = config or os.environ.get("QRES_CONFIG")
    path = Path(explicit) if explicit else Path.cwd() / CONFIG_FILE_NAME
    if explicit and not path.is_file():
        raise ConfigError(f"config file {path} does not exist; create it or drop --config/QRES_CONFIG")
    toml: dict[str, Any] = {}
    if path.is_file():
        try:
            toml = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    root = (path.parent if path.is_file() else Path.cwd()).resolve()
    wanted = {k: toml[k] for k in ("store_dir", "state_dir", "bundle") if k in toml}
    merged = _merge(_merge(_DEFAULTS, wanted), _environment())
    if store_dir is not None:
        merged["store_dir"] = store_dir
    where = f"{path}" if path.is_file() else "defaults/environment"
    bundle = merged["bundle"] if isinstance(merged["bundle"], dict) else {}

    def absolute(value: Any) -> Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"invalid settings from {where}: expected a path, got {value!r}")
        p = Path(value)
        return (p if p.is_absolute() else root / p).resolve()

    state = absolute(merged["state_dir"])
    key_dir = bundle.get("key_dir")
    return StoreSettings(
        store_dir=absolute(merged["store_dir"]),
        state_dir=state,
        bundle=BundleView(
            key_dir=absolute(key_dir) if key_dir is not None else state / "keys",
            allow_unsigned=_flag(bundle.get("allow_unsigned", False), where),
        ),
    )
