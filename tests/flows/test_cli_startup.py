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
rich = "rich" in sys.modules
print(json.dumps({"exit": result.exit_code, "heavy": heavy, "rich_table": "rich.table" in sys.modules, "rich": rich,
                  "compute": "pyarrow.compute" in sys.modules, "out": result.stdout}))
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


_EVERY_HELP = """
import json, sys
import typer.main
from typer.testing import CliRunner
from flows.cli.app import app
heavy_names = set(json.loads(sys.stdin.read()))
paths = []
def walk(cmd, path):
    paths.append(path)
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        walk(sub, [*path, name])
walk(typer.main.get_command(app), [])
report = []
for path in paths:  # one process: a module loaded by any help stays loaded, so the first to load it is named
    result = CliRunner().invoke(app, [*path, "--help"])
    heavy = sorted({m.split(".")[0] for m in sys.modules} & heavy_names)
    report.append({"path": path, "exit": result.exit_code, "heavy": heavy, "rich": "rich" in sys.modules})
print(json.dumps(report))
"""


def test_every_help_loads_no_pipeline_framework() -> None:
    """`qres --help` and every (nested) sub-command's `--help`, walked from the click tree."""
    res = subprocess.run(
        [sys.executable, "-c", _EVERY_HELP],
        input=json.dumps(HEAVY),
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        timeout=300,
    )
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert {"run", "decide", "verify", "versions", "resolve", "keys", "import", "drill", "runbook"} <= {
        r["path"][0] for r in report[1:]
    }
    for r in report:
        shown = " ".join(["qres", *r["path"], "--help"])
        assert r["exit"] == 0, shown
        assert r["heavy"] == [], f"`{shown}` imported {r['heavy']}"
        assert not r["rich"], f"`{shown}`: help output is plain; rich belongs to the commands that draw with it"


def test_decide_loads_only_the_client(tmp_path: Path) -> None:
    """`qres decide` on an empty store fails (nothing published) without loading the pipeline."""
    got = _loaded("decide", "--store", str(tmp_path), "--down", "x")
    assert got["exit"] != 0
    # the store and key come from qres.toml, read without pydantic-settings (flows/store_settings.py)
    assert got["heavy"] == [], f"`qres decide` imported {got['heavy']}"


@pytest.fixture
def signed_store(tmp_path: Path) -> Path:
    """A store with one signed bundle and the qres.toml that names it and its public key."""
    from policies.bundle.store import publish_bundle
    from qres_client.signing import init_keys, load_signing_key

    private, _ = init_keys(tmp_path / "keys")
    files = {"decisions.parquet": b"not read by verify or versions", "policy.json": b"{}"}
    publish_bundle(
        tmp_path / "bundles", "shedding", files, {"mlflow_run_id": "r1"}, signer=load_signing_key(private).sign
    )
    cfg = tmp_path / "qres.toml"
    cfg.write_text(
        f'store_dir = "{tmp_path / "bundles"}"\nstate_dir = "{tmp_path / "state"}"\n'
        f'[bundle]\nkey_dir = "{tmp_path / "keys"}"\n'
    )
    return cfg


@pytest.mark.parametrize("command", ["verify", "versions"])
def test_store_commands_load_no_pipeline_framework(signed_store: Path, command: str) -> None:
    """`qres verify` and `qres versions` check a real signed bundle with the client alone."""
    got = _loaded(command, "--config", str(signed_store))
    assert got["exit"] == 0, got
    assert got["heavy"] == [], f"`qres {command}` imported {got['heavy']}"


def test_decide_answers_in_plain_text_from_the_client_alone(tmp_path: Path) -> None:
    """A real signed decision table: the answer is printed without rich, the settings read without
    pydantic-settings, and nothing of the pipeline is imported."""
    import pyarrow as pa

    from policies.bundle.store import publish_bundle
    from policies.scenarios.scenario_set import FALLBACK_KEY, NORMAL_KEY, scenario_key
    from qres_client.bundle import encode_json, encode_parquet
    from qres_client.schema import DECISIONS_SHEDDING
    from qres_client.signing import init_keys, load_signing_key

    private, _ = init_keys(tmp_path / "keys")
    deps = ["db", "queue"]
    scenarios = [(NORMAL_KEY, []), (scenario_key(["db"], []), ["db"]), (FALLBACK_KEY, deps)]
    rows = [
        {
            "scenario_key": key,
            "down": down,
            "degraded": [],
            "effective_down": down,
            "probability": 0.1,
            "workload_id": f"wl-{w}",
            "admit": 0.25 if down and w == 0 else 1.0,
            "rank": w + 1,
        }
        for key, down in scenarios
        for w in range(3)
    ]
    files = {
        "decisions.parquet": encode_parquet(pa.Table.from_pylist(rows, schema=DECISIONS_SHEDDING)),
        "policy.json": encode_json({"scenarios": sorted(k for k, _ in scenarios)}),
    }
    publish_bundle(
        tmp_path / "bundles", "shedding", files, {"mlflow_run_id": "r1"}, signer=load_signing_key(private).sign
    )
    cfg = tmp_path / "qres.toml"
    cfg.write_text(f'store_dir = "bundles"\n[bundle]\nkey_dir = "{tmp_path / "keys"}"\n')
    got = _loaded("decide", "--config", str(cfg), "--down", "db")
    assert got["exit"] == 0, got
    assert got["heavy"] == [] and not got["rich"], got
    lines = got["out"].splitlines()
    assert lines[0] == f"shedding v000001: scenario {scenario_key(['db'], [])} (exact)"
    assert lines[1].split() == ["rank", "workload", "admit"]
    assert [ln.split() for ln in lines[2:]] == [["1", "wl-0", "25%"], ["2", "wl-1", "100%"], ["3", "wl-2", "100%"]]
    as_json = _loaded("decide", "--config", str(cfg), "--down", "db", "--json")
    answer = json.loads(as_json["out"])
    assert (answer["scenario"], answer["actions"][0]["admit"]) == (scenario_key(["db"], []), 0.25)
    assert not as_json["rich"]
