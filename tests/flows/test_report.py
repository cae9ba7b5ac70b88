"""`qres report` and `qres backtest` on a real small sample; the page checked in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli.app import app

CHROMIUM = "/usr/bin/chromium"


def _ensure_chromium() -> str:
    """Debian's chromium, installed on first use (the test set-up); skip only when apt cannot."""
    if not Path(CHROMIUM).exists() and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, timeout=900)
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed and apt-get could not install it")
    return CHROMIUM


@pytest.fixture(scope="module")
def report_run(small_sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    res = CliRunner().invoke(app, ["report", "--data", str(small_sample), "--out", str(out), "--json", "--quiet"])
    assert res.exit_code == 0, res.output
    return out, json.loads(res.stdout)


@pytest.mark.e2e
def test_backtest_json_has_every_policy_and_figure(small_sample, tmp_path: Path) -> None:
    cfg = tmp_path / "qres.toml"  # two days: split early enough that incidents remain to replay
    cfg.write_text(f'data_dir = "{small_sample}"\nstore_dir = "{tmp_path}/b"\n[backtest]\ntrain_fraction = 0.3\n')
    res = CliRunner().invoke(app, ["backtest", "--config", str(cfg), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert {"incidents", "overall", "goal", "split_at", "delay_min"} <= set(doc)
    assert doc["n_incidents"] > 0 and doc["overall"] and doc["refused"] is None
    for figs in doc["overall"].values():
        assert {"share", "loss", "cvar", "min_share_violation_min", "switch_min_median", "kl_mean"} <= set(figs)
    assert doc["standby"]["placed"]  # the sample has standby candidates: published holds the trained placement
    assert doc["overall"]["greedy"]["standby_cost"] == 0.0 < doc["overall"]["greedy_standby"]["standby_cost"]
    assert doc["overall"]["published"]["standby_cost"] == doc["overall"]["greedy_standby"]["standby_cost"]
    documented = (Path(__file__).resolve().parents[2] / "docs" / "backtest.md").read_text()
    inc = doc["incidents"][0]
    keys = set(doc) | set(doc["goal"]) | set(doc["overall"]["published"]) | set(inc) | set(inc["policies"]["oracle"])
    assert not [k for k in sorted(keys) if f"`{k}`" not in documented]  # every --json key is in docs/backtest.md


@pytest.mark.e2e
def test_report_is_self_contained(report_run) -> None:
    path, doc = report_run
    page = path.read_text()
    assert doc["report"] == str(path)
    assert page.count("data:image/png;base64,") >= 3  # P(down), coverage, backtest (+ heat map when pairs exist)
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", page)  # nothing loaded from elsewhere
    for section in ("Failure model", "Scenario coverage", "Shedding policy", "Solvers", "Backtest"):
        assert f"<h2>{section}</h2>" in page


@pytest.mark.e2e
def test_report_renders_in_headless_chromium(report_run) -> None:
    path, _ = report_run
    chromium = _ensure_chromium()
    with tempfile.TemporaryDirectory() as profile:
        res = subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--enable-logging=stderr",
                "--v=0",
                "--virtual-time-budget=3000",
                "--dump-dom",
                path.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    assert "<h2>Backtest</h2>" in dom and dom.count("<img") >= 3
    console_errors = [
        line for line in res.stderr.splitlines() if "CONSOLE" in line and ("Error" in line or "error" in line)
    ]
    assert not console_errors, console_errors
    assert "Failed to load resource" not in res.stderr and "net::ERR" not in res.stderr
