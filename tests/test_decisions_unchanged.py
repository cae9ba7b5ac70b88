"""Behaviour is locked: `make run` on the default sample publishes the same decision bytes as before the redesign.

The sha256 values below were recorded on commit 1d05f4f (before issue 13's layout move), and again
for issue 14's time-coupled shedding plans, by
``qres sample --out data/sample`` (default seed and days), ``qres keys init`` and ``qres run``
with the embedded defaults. A refactor must leave every one of them unchanged.

Decision files do not depend on the signing key, the host or the folder: the key signs only
the manifest (which also holds the time, paths and MLflow run id, so it is not compared here).

When a change is *meant* to alter decisions, re-record the constants in the same commit and say
why in its message::

    rm -rf .qres bundles data/sample && make run
    (cd bundles && sha256sum */v000001/*)     # every file except manifest.json goes below
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.waits import WAIT_S

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]

# Recorded before the redesign, on commit 1d05f4f (see the module docstring to re-record); re-recorded
# for issue 14: shedding decisions are planned over time (act_after_s, hold_s columns) and every
# pattern seen in the history gets its own scenario (target_mass 1.0), which also changes the
# scenario-dependent standby, routing and tier files; and again when shedding decisions gained the
# admission caps (admit_max, also in policy.json's timed plans) and the normal state's anticipating order
# (policies/shedding/admission.py); and again for issue 20's solve scaling: the solved set is chosen by
# coverage (no single outage that was never observed), each problem's seed
# comes from its content (equal problems share one answer) and routing draws its samples per service
# state (so a scenario's LP covers only the services it touches), and the Ising model behind the
# sampled scenarios couples only pairs seen down together (fallback.json and health.json unchanged); and
# again for issue 14's correlated-risk pair terms in the time-coupled objective: shedding's policy.json
# reports the timed plans' objectives with them (decisions.parquet, the escalation-aware ranking and
# the risk-shed timing leave the sample's decisions as they were); and again when the normal state's order
# also weighs the region outages no scenario names (shedding's decisions.parquet: the normal state's ranks).
EXPECTED_SHA256 = {
    "shedding": {
        "decisions.parquet": "44ed4710d015c0ff408ea59fcbed4233adca6f9c59c7a3f15df4c7d6e6caec71",
        "policy.json": "f765bfa1553986d2bbd82d0e7abf9394c9fc0aa75570bdf0728be4ab12f59cfb",
        "tiers.json": "e1650573c3c2aafebd6d8d96ce6a1f701247a1c8c7a0c78cb2c7bfd45e3fec69",
        "tiers.parquet": "d91be462ae0bee82068c6e73d3e66a3558513dbacf60b82e02240c4946d41515",
        "fallback.json": "52f9949bc27756541b1e91cf15ae905d83fd1782212c6af3ecc31c466615b126",
        "health.json": "9ea13af779330d0beb555b55dd893057c4bf9d4ab1c99c1abce9f23d5e24e4a5",
    },
    "standby": {
        "decisions.parquet": "9a166becfea00c5bb96e627b4828793f061ebd2928773315eea1bb82419cd84d",
        "policy.json": "e9162a878b9709a91a73edec82e4e270164b93fa50cc26f21a348aafb1d7cdd8",
    },
    "routing": {
        "decisions.parquet": "365c3c8ae2bc9ee7f6d6da2f8ac57e404281a2b04cd46123f0d77e881b34ac85",
        "policy.json": "7ee27eca2ce420187a0fc003fa2e42ccb2f03de4e810eddbb9375d1b839491e7",
    },
}

_PATHS = ("data_dir", "store_dir", "state_dir")


def _without_paths(settings) -> dict:
    dumped = settings.model_dump(mode="json")
    dumped["bundle"].pop("key_dir")
    return {k: v for k, v in dumped.items() if k not in _PATHS}


@dataclass(frozen=True)
class FirstRun:
    home: Path  # the fresh folder (a clone, for the commands)
    output: str  # everything the three commands printed, stdout and stderr

    @property
    def bundles(self) -> Path:
        return self.home / "bundles"


def _qres(home: Path, *args: str) -> subprocess.CompletedProcess:
    """A `qres` command as a person types it after `make run` (``.venv/bin/qres`` in the clone)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QRES_", "PREFECT_", "MLFLOW_"))}
    env["COLUMNS"] = "100"
    return subprocess.run([".venv/bin/qres", *args], cwd=home, env=env, capture_output=True, text=True, timeout=WAIT_S)


@pytest.fixture(scope="module")
def make_run(tmp_path_factory: pytest.TempPathFactory) -> FirstRun:
    """`make run` in a fresh folder: sample, keys, run, as separate processes with the embedded defaults
    (no qres.toml there, no QRES_/PREFECT_/MLFLOW_ variables, Prefect's own temporary server)."""
    home = tmp_path_factory.mktemp("make-run")
    (home / ".venv").symlink_to(ROOT / ".venv")  # the clone's environment, as `make run` leaves it
    printed = []
    for args in (["sample", "--out", "data/sample"], ["keys", "init", "--exist-ok"], ["run"]):
        result = _qres(home, *args)
        printed.append(result.stdout + result.stderr)
        assert result.returncode == 0, f"qres {' '.join(args)}:\n{printed[-1][-3000:]}"
    return FirstRun(home, "\n".join(printed))


def test_embedded_defaults_are_the_shipped_qres_toml(tmp_path: Path, monkeypatch) -> None:
    """The run below uses the defaults; `make run` uses qres.toml. They must be the same settings."""
    from flows.settings import load_settings

    for name in [n for n in os.environ if n.startswith("QRES_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    assert _without_paths(load_settings(None)) == _without_paths(load_settings(ROOT / "qres.toml"))


@pytest.mark.parametrize("policy", sorted(EXPECTED_SHA256))
def test_decision_files_are_byte_identical_to_the_recorded_run(make_run: FirstRun, policy: str) -> None:
    version = make_run.bundles / policy / "v000001"
    assert (make_run.bundles / policy / "LATEST").read_text() == "v000001\n"
    got = {name: hashlib.sha256((version / name).read_bytes()).hexdigest() for name in EXPECTED_SHA256[policy]}
    assert got == EXPECTED_SHA256[policy], f"{policy}: decision files changed (see this module's docstring)"
    shipped = {p.name for p in version.iterdir()} - {"manifest.json"}
    assert shipped == set(EXPECTED_SHA256[policy]), f"{policy}: a file was added or dropped; record it here"


# What a first hour must never show: a traceback, a library's warning, a path of another machine.
_NOISE = re.compile(r"Traceback|\b\w*Warning\b|^WARNING|warnings\.warn", re.MULTILINE)
_ABSOLUTE = re.compile(r"(?<![\w:/.])/(?:[\w.-]+/)+[\w.-]*")


def _clean(text: str, home: Path) -> list[str]:
    problems = [m.group(0) for m in _NOISE.finditer(text)]
    problems += [p for p in _ABSOLUTE.findall(text) if not p.startswith(str(home))]
    return problems


def test_first_run_prints_the_summary_the_report_and_next_commands(make_run: FirstRun) -> None:
    """Issue 21: `make run` ends with the summary, a report on disk and three commands to try next."""
    out = make_run.output
    assert "qresilience nightly: published" in out
    report = re.search(r"\.qres/reports/nightly-\w+\.html", out)
    assert report and (make_run.home / report.group(0)).read_text().startswith("<!DOCTYPE html")
    assert _clean(out, make_run.home) == [], out[-3000:]
    assert "Task run" not in out and "prefect.io" not in out  # third-party lines silenced by configuration


def test_every_next_command_runs_cleanly(make_run: FirstRun) -> None:
    """Each command the summary offers works as printed, and prints nothing a newcomer should not see."""
    commands = re.findall(r"\.venv/bin/qres (decide --down [\w.-]+|versions|backtest)\b", make_run.output)
    assert len(commands) == 3, make_run.output[-3000:]
    for command in commands:
        result = _qres(make_run.home, *command.split())
        assert result.returncode == 0, f"qres {command}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        assert _clean(result.stdout + result.stderr, make_run.home) == [], f"qres {command}"
