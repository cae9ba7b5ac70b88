from __future__ import annotations

from pathlib import Path

import pytest

from flows.settings import load_settings
from policies.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in ("QRES_CONFIG", "QRES_SEED", "QRES_SOLVE__TIME_LIMIT_S", "QRES_STORE_DIR"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults_resolve_inside_the_working_folder(tmp_path: Path) -> None:
    s = load_settings()
    assert s.store_dir == tmp_path / "bundles"
    assert s.state_dir == tmp_path / ".qres"
    assert s.tracking_uri == f"sqlite:///{tmp_path / '.qres' / 'mlflow.db'}"


def test_file_then_environment_then_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "conf" / "qres.toml"
    cfg.parent.mkdir()
    cfg.write_text('seed = 11\nstore_dir = "out"\n[solve]\ntime_limit_s = 3.5\nlevels = 2\n')
    s = load_settings(cfg)
    assert (s.seed, s.solve.time_limit_s, s.solve.levels) == (11, 3.5, 2)
    assert s.store_dir == cfg.parent / "out"  # relative to the config file
    monkeypatch.setenv("QRES_SEED", "12")
    monkeypatch.setenv("QRES_SOLVE__TIME_LIMIT_S", "9")
    s = load_settings(cfg)
    assert (s.seed, s.solve.time_limit_s, s.solve.levels) == (12, 9.0, 2)
    assert load_settings(cfg, seed=13).seed == 13


def test_qres_toml_in_working_folder_is_picked_up(tmp_path: Path) -> None:
    (tmp_path / "qres.toml").write_text("seed = 21\n")
    assert load_settings().seed == 21


def test_shipped_config_is_valid() -> None:
    shipped = Path(__file__).resolve().parents[2] / "qres.toml"
    s = load_settings(shipped)
    assert s.store_dir == shipped.parent / "bundles"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("seed = -1\n", "seed"),
        ("[solve]\nsolvers = ['magic']\n", "unknown solver"),
        ("[scenarios]\ntarget_mass = 1.5\n", "target_mass"),
        ("typo_key = 1\n", "typo_key"),
    ],
)
def test_bad_config_names_the_setting(tmp_path: Path, text: str, needle: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=needle):
        load_settings(cfg)


def test_missing_explicit_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_backtest_config_reads_every_field_from_its_setting(tmp_path: Path) -> None:
    import dataclasses

    from flows.params import anneal_params, backtest_config
    from policies.backtest.run import BacktestConfig

    cfg = tmp_path / "qres.toml"
    cfg.write_text(
        "seed = 3\n[model]\nwindow_min = 5\n[scenarios]\nsample_max = 2\n"
        '[[scenarios.what_if]]\nname = "eu"\ndown = ["region-eu-west"]\n'
        '[solve]\nanneal_num_sweeps = 77\n[backtest]\ncvar_alpha = 0.8\nunmatched = "cover"\n'
    )
    s = load_settings(cfg)
    bt = backtest_config(s)
    assert all("setting" in f.metadata for f in dataclasses.fields(BacktestConfig))  # one place per parameter
    assert (bt.seed, bt.window_min, bt.sample_max, bt.alpha, bt.unmatched) == (3, 5, 2, 0.8, "cover")
    assert bt.anneal == anneal_params(s) and bt.anneal.num_sweeps == 77
    assert bt.what_if[0]["name"] == "eu" and bt.what_if[0]["down"] == ("region-eu-west",)
    assert bt.scenario_kwargs()["sample_params"] == {"num_reads": 400, "num_sweeps": 200, "beta": 0.5}
