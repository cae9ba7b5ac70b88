"""One typed settings model for every flow and command.

Precedence, highest first: explicit overrides (CLI flags), ``QRES_*`` environment
variables (nested with ``__``, e.g. ``QRES_SOLVE__TIME_LIMIT_S=5``), the config file
(``qres.toml`` in the working directory, or ``--config`` / ``QRES_CONFIG``), then the
defaults below. Relative paths are resolved against the config file's folder (or the
working directory when there is no file), so all state stays in the project folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from flows.settings_sections import (
    BacktestSettings,
    BundleSettings,
    FamilySettings,
    GateSettings,
    IngestSettings,
    MlflowSettings,
    ModelSettings,
    OrchestrationSettings,
    ScenarioSettings,
    SolveSettings,
)
from policies.errors import ConfigError

__all__ = ["Settings", "load_settings", "CONFIG_FILE_NAME"]

CONFIG_FILE_NAME = "qres.toml"


def _local_paths(entry: dict[str, Any], root: Path) -> dict[str, Any]:
    """A source entry's relative local paths (into, path, export, files) taken from ``root``; URLs stay."""

    def fix(v: Any) -> Any:
        return str(root / v) if isinstance(v, str) and v and "://" not in v and not Path(v).is_absolute() else v

    out = {k: fix(entry[k]) for k in ("into", "path", "export") if k in entry}
    if isinstance(entry.get("files"), list):
        out["files"] = [fix(v) for v in entry["files"]]
    return out


class Settings(BaseSettings):
    """Everything a run needs; validated on creation."""

    model_config = SettingsConfigDict(
        env_prefix="QRES_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )
    _toml_file: ClassVar[Path | None] = None

    data_dir: str = "data/sample"  # a folder, glob or fsspec URL (policies/sources.py)
    store_dir: Path = Path("bundles")
    state_dir: Path = Path(".qres")
    seed: int = Field(7, ge=0, lt=2**31)
    model: ModelSettings = ModelSettings()
    scenarios: ScenarioSettings = ScenarioSettings()
    solve: SolveSettings = SolveSettings()
    families: FamilySettings = FamilySettings()
    gates: GateSettings = GateSettings()
    mlflow: MlflowSettings = MlflowSettings()
    bundle: BundleSettings = BundleSettings()
    ingest: IngestSettings = IngestSettings()
    backtest: BacktestSettings = BacktestSettings()
    orchestration: OrchestrationSettings = OrchestrationSettings()
    sources: dict[str, dict[str, Any]] = {}  # [sources.<name>] connector entries (policies/telemetry/importers/spec.py)

    @field_validator("sources")
    @classmethod
    def _sources(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        from policies.telemetry.importers.spec import parse_sources

        try:
            parse_sources(v)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls._toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls._toml_file))
        return tuple(sources)

    def resolved(self, root: Path) -> Settings:
        """A copy whose paths are absolute, relative ones taken from ``root``."""
        fix: dict[str, Any] = {
            k: (p if p.is_absolute() else (root / p)).resolve()
            for k, p in (("store_dir", self.store_dir), ("state_dir", self.state_dir))
        }
        data = str(self.data_dir)  # URLs and globs stay as given; local folders become absolute
        fix["data_dir"] = data if "://" in data or Path(data).is_absolute() else str(root / data)
        # a pull's landing folder (`into`) and a source's files, like data_dir, from the config's folder
        fix["sources"] = {n: e | _local_paths(e, root) for n, e in self.sources.items()}
        key_dir = self.bundle.key_dir or Path(fix["state_dir"]) / "keys"
        fix["bundle"] = self.bundle.model_copy(update={"key_dir": (root / key_dir).resolve()})
        return self.model_copy(update=fix)

    @property
    def tracking_uri(self) -> str:
        return self.mlflow.tracking_uri or f"sqlite:///{self.state_dir / 'mlflow.db'}"

    @property
    def artifact_root(self) -> Path:
        return self.state_dir / "mlartifacts"

    def as_params(self) -> dict[str, Any]:
        """Flat, string-valued view for MLflow params and the manifest."""
        flat: dict[str, Any] = {}
        for key, value in self.model_dump(mode="json").items():
            if isinstance(value, dict):
                flat.update({f"{key}.{k}": v for k, v in value.items()})
            else:
                flat[key] = value
        return flat


def load_settings(config: str | Path | None = None, **overrides: Any) -> Settings:
    """Read settings from defaults, the config file, ``QRES_*`` variables and overrides.

    ``config`` defaults to ``$QRES_CONFIG`` or ``./qres.toml`` when it exists. A config
    that was asked for by name but does not exist is an error; one that is merely
    absent is not.
    """
    explicit = config or os.environ.get("QRES_CONFIG")
    path = Path(explicit) if explicit else Path.cwd() / CONFIG_FILE_NAME
    if explicit and not path.is_file():
        raise ConfigError(f"config file {path} does not exist; create it or drop --config/QRES_CONFIG")
    toml = path if path.is_file() else None
    root = (toml.parent if toml else Path.cwd()).resolve()
    Settings._toml_file = toml
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        where = f"{toml}" if toml else "defaults/environment"
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r})" for e in exc.errors()
        )
        raise ConfigError(f"invalid settings from {where} or QRES_* variables: {problems}") from None
    finally:
        Settings._toml_file = None
    return settings.resolved(root)
