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
