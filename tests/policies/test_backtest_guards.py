"""Guards that speak: the model and the backtest refuse empty questions and name the cause."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli.app import app
from flows.cli.common import EXIT_REFUSED
from policies.backtest.run import BacktestConfig, run_backtest
from policies.errors import NothingToLearnError
from policies.model.failure_model import fit_failure_model
from policies.model.guards import outage_warnings, require_outages
from policies.telemetry.importers.upptime import import_upptime
from policies.telemetry.ingest import conform_tables, load_telemetry
from tests.policies.importers.upptime_builder import History

FAST = BacktestConfig(solvers=("greedy",), time_limit_s=0.2, sample_max=0)


def _imported(tmp_path: Path, downs: list[float], name: str = "h") -> Path:
    h = History().sites(0, Shop="https://shop.test", Api="https://api.test")
    h.every(0, 240, "shop", url="https://shop.test", step=2).every(0, 240, "api", url="https://api.test", step=2)
    for at in downs:  # a down check, then up again two hours later (the grid carries it)
        h.check(at + 0.5, "api", "down", url="https://api.test")
    out = tmp_path / f"{name}-data"
    import_upptime(h.write(tmp_path / name), out)
    return out


def _tables(folder: Path) -> dict:
    return conform_tables(load_telemetry(folder).tables)


def test_history_without_outages_is_refused_by_model_and_backtest(tmp_path: Path) -> None:
    tables = _tables(_imported(tmp_path, []))
    model = fit_failure_model(tables["services"], tables["dependencies"], tables["health_checks"])
    with pytest.raises(NothingToLearnError, match="no outage episodes in 3 service"):
        require_outages(model)
    with pytest.raises(NothingToLearnError, match="no outage episodes"):
        run_backtest(tables, FAST)
    res = CliRunner().invoke(app, ["model", "--data", str(tmp_path / "h-data"), "--json"])
    assert res.exit_code == EXIT_REFUSED and "no outage episodes" in res.output


def test_few_outages_warn_and_none_after_the_split_is_refused(tmp_path: Path) -> None:
    tables = _tables(_imported(tmp_path, [20, 60]))
    model = fit_failure_model(tables["services"], tables["dependencies"], tables["health_checks"])
    require_outages(model)  # two episodes: enough not to refuse ...
    assert "only 2 outage episode(s)" in outage_warnings(model)[0]  # ... but too few to learn from
    with pytest.raises(NothingToLearnError, match="no incident starts after the split"):
        run_backtest(tables, FAST)
    kept = run_backtest(tables, BacktestConfig(**{**FAST.__dict__, "refuse_empty": False}))
    assert kept["overall"] == {} and "no incident starts after the split" in kept["refused"]


def test_default_tables_where_capacity_never_binds_are_refused(tmp_path: Path) -> None:
    folder = _imported(tmp_path, [20, 60, 200, 220])
    with pytest.raises(NothingToLearnError, match="capacity never binds"):
        run_backtest(_tables(folder), FAST)
    res = CliRunner().invoke(app, ["backtest", "--data", str(folder), "--json", "-q"])
    assert res.exit_code == EXIT_REFUSED and "capacity never binds" in res.output
    assert '"overall"' not in res.output  # no figures printed for an empty question
