"""The CLI's top level stays light: `--help` and the client-side commands load no pipeline framework.

Measured by what a fresh interpreter has imported, not by time (time depends on the machine).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What only the pipeline's own commands need (run, resolve, validate, model, backtest, solve).
HEAVY = ("prefect", "mlflow", "great_expectations", "pandas", "ortools", "dimod", "dwave", "scipy", "pydantic_settings")

_CHILD = """
import json, sys
from typer.testing import CliRunner
from flows.cli.app import app
result = CliRunner().invoke(app, sys.argv[1:])
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(sys.stdin.read())))
print(json.dumps({"exit": result.exit_code, "heavy": heavy, "rich_table": "rich.table" in sys.modules}))
"""


def _loaded(*args: str) -> dict:
    res = subprocess.run(
        [sys.executable, "-c", _CHILD, *args],
        input=json.dumps(HEAVY),
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        timeout=300,
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "args", [["--help"], ["decide", "--help"], ["run", "--help"], ["resolve", "--help"], ["drill", "--help"]]
)
def test_help_loads_no_pipeline_framework(args: list[str]) -> None:
    got = _loaded(*args)
    assert got["exit"] == 0
    assert got["heavy"] == [], f"`qres {' '.join(args)}` imported {got['heavy']}"
    assert not got["rich_table"], "help output is plain: rich tables are imported by the commands that draw them"


def test_decide_loads_only_the_client(tmp_path: Path) -> None:
    """`qres decide` on an empty store fails (nothing published) without loading the pipeline."""
    got = _loaded("decide", "--store", str(tmp_path), "--down", "x")
    assert got["exit"] != 0
    # the settings (pydantic-settings) are read: the store and key come from qres.toml
    assert set(got["heavy"]) <= {"pydantic_settings"}, f"`qres decide` imported {got['heavy']}"
