"""Every real history in ../shared/realdata: imported, modelled and backtested, with figures or a named refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli.app import app
from flows.cli.common import EXIT_REFUSED

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "realdata"
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not REAL.is_dir(), reason="shared real data not present")]

# history -> (importer, source, refusal on the importer's default topology, replayable with a real topology)
CASES = {
    "manticore": ("upptime", "upptime/manticore/commits.jsonl", "capacity never binds", True),
    "honch": ("upptime", "upptime/honch/commits.jsonl", "no incident starts after the split", False),
    "4hse": ("upptime", "upptime/4hse/commits.jsonl", "capacity never binds", True),
    "3deling": ("upptime", "upptime/3deling/commits.jsonl", "capacity never binds", True),
    "github": ("statuspage", "statuspage/github/incidents.jsonl.gz", "capacity never binds", True),
}

# What `qres model` warns about (README facts); the others warn about nothing.
WARNINGS = {
    "honch": ["only 1 outage episode"],  # nearly always up
    "3deling": ["clients-portal: no check for", "3-deling: no check for", "probably retired"],
    "4hse": ["academy: no check for", "www: no check for 91.2 days from 2025-04-02"],
}


def _run(*args: str):
    return CliRunner().invoke(app, [*args])


@pytest.mark.parametrize("name", sorted(CASES))
def test_real_history_end_to_end(name: str, small_sample: Path, tmp_path: Path) -> None:
    kind, source, refusal, replayable = CASES[name]
    data = tmp_path / name
    res = _run("import", kind, str(REAL / source), "--out", str(data))
    assert res.exit_code == 0, res.output
    assert "kept" in res.output or kind == "statuspage"
    cfg = tmp_path / "qres.toml"
    cfg.write_text(
        f'store_dir = "{tmp_path}/b"\nstate_dir = "{tmp_path}/s"\nseed = 3\n'
        "[solve]\ntime_limit_s = 0.5\nanneal_num_reads = 4\nanneal_num_sweeps = 100\n[scenarios]\nsample_max = 0\n"
    )
    model = _run("model", "--config", str(cfg), "--data", str(data), "--json")
    assert model.exit_code == 0, model.output
    report = json.loads(model.stdout)
    assert sum(d["outages"] for d in report["dependencies"]) > 0 and report["scenarios"]
    warnings = " ".join(report["warnings"])
    for expected in WARNINGS.get(name, []):
        assert expected in warnings
    assert bool(warnings) == (name in WARNINGS)
    plain = _run("backtest", "--config", str(cfg), "--data", str(data), "--json", "-q")
    assert plain.exit_code == EXIT_REFUSED and refusal in plain.output  # never a perfect score for nothing
    overlaid = _run(
        "backtest", "--config", str(cfg), "--data", str(data), "--overlay", str(small_sample), "--json", "-q"
    )
    if not replayable:
        assert overlaid.exit_code == EXIT_REFUSED and refusal in overlaid.output
        return
    assert overlaid.exit_code == 0, overlaid.output
    doc = json.loads(overlaid.stdout)
    assert doc["n_incidents"] > 0 and doc["refused"] is None
    standby = {"published_no_standby", "greedy_standby"} if doc["standby"] else set()  # the sample has candidates
    assert (
        set(doc["overall"])
        == {"published", "fcfs", "tiers", "greedy", "greedy_dwell", "greedy_admission", "oracle"} | standby
    )
    assert doc["overall"]["oracle"]["share"] == pytest.approx(1.0)
    assert doc["overall"]["fcfs"]["share"] < 1.0  # the question is not empty: doing nothing loses value
