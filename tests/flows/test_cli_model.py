"""`qres model`: the failure model and scenario set of a data source, as JSON and as tables."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from flows.cli.app import app

runner = CliRunner()


def test_model_json_lists_estimates_pairs_and_scenarios(small_sample: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # no qres.toml here: defaults
    result = runner.invoke(app, ["model", "--data", str(small_sample), "--json", "--top", "5"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    deps = {d["service_id"]: d for d in report["dependencies"]}
    assert len(deps) == 40
    for d in deps.values():
        assert 0 <= d["p_down_lo"] <= d["p_down_hi"] <= 1 and 0 <= d["p_degraded"] <= 1
        assert d["failure_rate_per_min"] > 0 and d["recovery_rate_per_min"] > 0
    assert report["info"]["transitions_removed"] > 0  # the sample has flapping probes
    assert len(report["co_failure"]) <= 5
    keys = [s["key"] for s in report["scenarios"]]
    assert keys[0] == "normal" and keys[-1] == "fallback:all-down"
    sources = {s["source"] for s in report["scenarios"]}
    # scenarios by coverage (the default): every observed pattern is empirical, no unobserved single outage
    assert sources >= {"normal", "empirical", "fallback"} and "single" not in sources
    cov = report["coverage"]
    assert cov["covered_mass"] >= cov["target_mass"] - 1e-9 and sum(cov["by_source"].values()) == len(keys)


def test_model_table_and_help(small_sample: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["model", "--help"]).exit_code == 0
    result = runner.invoke(app, ["model", "--data", str(small_sample)])
    assert result.exit_code == 0, result.output
    assert "per dependency" in result.output and "scenarios" in result.output and "probability mass" in result.output


def test_model_on_a_missing_folder_fails_cleanly(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["model", "--data", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and "error" in result.output
