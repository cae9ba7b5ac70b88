"""The store commands' settings reader gives what the full settings model gives, field by field."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flows import settings as full
from flows.store_settings import CONFIG_FILE_NAME, load_store_settings
from policies.errors import ConfigError

CASES = {
    "defaults": ("", {}, None),
    "relative paths from the config's folder": (
        'store_dir = "pub"\nstate_dir = "st"\n[bundle]\nkey_dir = "k"\nallow_unsigned = true\nkeep_versions = 3\n',
        {},
        None,
    ),
    "environment over the file": (
        'store_dir = "pub"\n[bundle]\nallow_unsigned = true\n',
        {"QRES_STORE_DIR": "env-pub", "QRES_BUNDLE__ALLOW_UNSIGNED": "off", "qres_state_dir": "/tmp/abs-state"},
        None,
    ),
    "a whole section as JSON, one key nested": (
        '[bundle]\nkey_dir = "k"\n',
        {"QRES_BUNDLE": '{"allow_unsigned": "yes"}', "QRES_BUNDLE__KEY_DIR": "env-keys"},
        None,
    ),
    "the flag over everything": ('store_dir = "pub"\n', {"QRES_STORE_DIR": "env-pub"}, "flag-pub"),
    "an empty key folder is the config's folder": ('[bundle]\nkey_dir = ""\n', {}, None),
    "a null key folder in JSON is the default": (
        '[bundle]\nkey_dir = "k"\n',
        {"QRES_BUNDLE": '{"key_dir": null}'},
        None,
    ),
    "other sections are not read": ("[solve]\ntime_limit_s = 5\n[model]\nwindow_min = 2\n", {}, None),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_fields_as_the_full_settings(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml, env, flag = CASES[case]
    for name in list(os.environ):
        if name.upper().startswith("QRES_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    cfg_dir = tmp_path / "project"
    cfg_dir.mkdir()
    cfg = cfg_dir / CONFIG_FILE_NAME
    cfg.write_text(toml)
    monkeypatch.chdir(tmp_path)  # relative paths must come from the config's folder, not here
    store = Path(flag).absolute() if flag else None
    want = full.load_settings(cfg, store_dir=store)
    got = load_store_settings(cfg, store_dir=store)
    assert (got.store_dir, got.state_dir) == (want.store_dir, want.state_dir)
    assert (got.bundle.key_dir, got.bundle.allow_unsigned) == (want.bundle.key_dir, want.bundle.allow_unsigned)


def test_no_config_file_uses_the_working_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QRES_CONFIG", raising=False)
    got, want = load_store_settings(), full.load_settings()
    assert (got.store_dir, got.bundle.key_dir) == (want.store_dir, want.bundle.key_dir)
    assert got.store_dir == tmp_path.resolve() / "bundles"
    assert full.CONFIG_FILE_NAME == CONFIG_FILE_NAME


def test_a_missing_named_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_store_settings(tmp_path / "nope.toml")


def test_a_broken_pipeline_section_does_not_stop_a_decision(tmp_path: Path) -> None:
    """The full model refuses the file; the store commands still find the store and key."""
    cfg = tmp_path / CONFIG_FILE_NAME
    cfg.write_text('store_dir = "pub"\n[solve]\ntime_limit_s = -1\n')
    with pytest.raises(ConfigError):
        full.load_settings(cfg)
    assert load_store_settings(cfg).store_dir == tmp_path.resolve() / "pub"


@pytest.mark.parametrize(
    ("toml", "match"),
    [
        ('[bundle]\nallow_unsigned = "maybe"\n', "not a boolean"),
        ("store_dir = 3\n", "expected a path"),
        ("x = [", "TOML"),
    ],
)
def test_bad_values_are_config_errors(tmp_path: Path, toml: str, match: str) -> None:
    cfg = tmp_path / CONFIG_FILE_NAME
    cfg.write_text(toml)
    with pytest.raises(ConfigError, match=match):
        load_store_settings(cfg)
