"""`qres solve` on the shipped example of every family, plus bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli.app import app

EXAMPLES = Path(__file__).resolve().parents[2] / "data" / "examples"
runner = CliRunner()


@pytest.mark.parametrize("family", ["shedding", "tiers", "standby", "routing"])
def test_solve_example_json(family: str) -> None:
    res = runner.invoke(app, ["solve", family, str(EXAMPLES / f"{family}.json"), "--time-limit", "1", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["family"] == family and out["candidates"] and out["alternatives"][0]["objective"] == out["objective"]
    assert len(out["solution"]) == len(out["variables"])
    feasible = [c for c in out["candidates"] if c["feasible"]]
    sign = 1 if out["sense"] == "max" else -1
    assert sign * out["objective"] >= max(sign * c["objective"] for c in feasible) - 1e-9


def test_solve_single_solver_and_same_seed_same_answer() -> None:
    args = ["solve", "standby", str(EXAMPLES / "standby.json"), "--solver", "anneal", "--seed", "11", "--json"]
    a, b = runner.invoke(app, args), runner.invoke(app, args)
    assert a.exit_code == 0 and json.loads(a.stdout)["solution"] == json.loads(b.stdout)["solution"]


def test_solve_bad_input(tmp_path: Path) -> None:
    res = runner.invoke(app, ["solve", "routing", str(EXAMPLES / "routing.json"), "--solver", "cpsat"])
    assert res.exit_code == 1 and "does not apply to routing" in res.output
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"sites": [], "candidates": [{"candidate_id": "c"}], "services": [], "scenarios": []}))
    res = runner.invoke(app, ["solve", "standby", str(bad)])
    assert res.exit_code == 1 and "lacks field" in res.output
    res = runner.invoke(app, ["solve", "nope", str(bad)])
    assert res.exit_code == 1 and "unknown family" in res.output


def test_benchmark_quick_prints_the_table() -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    res = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "solvers.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    for family in ("shedding", "standby", "tiers", "routing"):
        assert f"| {family}" in res.stdout
    assert "ratio to best bound" in res.stdout and "portfolio" in res.stdout


@pytest.mark.e2e
def test_solve_reproduces_the_nightly_decision(prefect_harness, small_sample: Path, tmp_path: Path) -> None:
    """A nightly scenario's problem, solved with `qres solve` and the nightly's config, gets the nightly's decision."""
    import numpy as np

    from flows.nightly import nightly
    from policies.scenarios.scenario_set import Scenario
    from policies.shedding.policy import build_shedding_problems, shedding_actions, shedding_problem_to_dict
    from policies.telemetry.ingest import conform_tables
    from qres_client.signing import init_keys
    from tasks.ingest import read_telemetry

    init_keys(tmp_path / "state" / "keys")
    cfg = tmp_path / "qres.toml"
    cfg.write_text(
        f'data_dir = "{small_sample}"\nstore_dir = "bundles"\nstate_dir = "state"\nseed = 5\n'
        "[solve]\ntime_limit_s = 0.5\nanneal_num_reads = 4\nanneal_num_sweeps = 100\n"
        "[families]\nenabled = []\n[backtest]\nenabled = false\n"
    )
    run = nightly(config=str(cfg))
    policy = json.loads((Path(run["bundle_path"]) / "policy.json").read_text())
    tables = conform_tables(read_telemetry(str(small_sample)).tables)
    # the scenarios where shedding decides most (the most workloads held below full admission)
    chosen = sorted(policy["scenarios"], key=lambda s: -sum(a["admit"] < 1 for a in s["actions"]))[:3]
    for sc in chosen:
        scenario = Scenario(
            sc["key"], tuple(sc["down"]), tuple(sc["degraded"]), tuple(sc["effective_down"]), 0.0, 0.0, ""
        )
        (problem,) = build_shedding_problems(
            tables["services"], tables["dependencies"], tables["workloads"], [scenario]
        )
        path = tmp_path / f"{sc['key'][:12]}.json"
        path.write_text(json.dumps(shedding_problem_to_dict(problem)))
        res = runner.invoke(app, ["solve", "shedding", str(path), "--config", str(cfg), "--json"])
        assert res.exit_code == 0, res.output
        out = json.loads(res.stdout)
        assert out["seed"] == 5 and out["chosen"] == sc["solver"]
        actions = shedding_actions(problem, np.array(out["solution"], dtype=np.int64))
        assert [(a["workload_id"], round(a["admit"], 6)) for a in actions] == [
            (a["workload_id"], a["admit"]) for a in sc["actions"]
        ]
