"""The `qres` command line, driven in-process as a user would type it."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from flows.cli.app import app

runner = CliRunner()


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["run"],
        ["sample"],
        ["validate"],
        ["decide"],
        ["verify"],
        ["keys", "init"],
        ["promote"],
        ["rollback"],
        ["replay"],
        ["versions"],
    ],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_sample_is_deterministic_and_never_overwrites(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert runner.invoke(app, ["sample", "--out", str(a), "--days", "1", "--seed", "3"]).exit_code == 0
    assert runner.invoke(app, ["sample", "--out", str(b), "--days", "1", "--seed", "3"]).exit_code == 0
    assert _digest(a) == _digest(b)
    again = runner.invoke(app, ["sample", "--out", str(a), "--days", "1", "--seed", "4"])
    assert again.exit_code == 1 and "exist" in again.output
    assert _digest(a) == _digest(b)


def test_validate_reports_rules_and_fails_on_bad_data(small_sample: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    ok = runner.invoke(app, ["validate", "--data", str(small_sample), "--json"])
    assert ok.exit_code == 0, ok.output
    report = json.loads(ok.stdout)
    assert report["success"] and set(report["tables"]) >= {"services", "health_checks"}
    bad = tmp_path / "bad"
    shutil.copytree(small_sample, bad)
    day = sorted((bad / "health_checks").iterdir())[0]
    hc = pq.read_table(day)
    lat = hc.column("latency_ms").to_pylist()
    lat[5] = -12.5
    pq.write_table(
        hc.set_column(
            hc.schema.get_field_index("latency_ms"), hc.schema.field("latency_ms"), pa.array(lat, pa.float64())
        ),
        day,
    )
    monkeypatch.setenv("QRES_INGEST__QUARANTINE_MAX_SHARE", "0")  # one bad row would be quarantined otherwise
    failed = runner.invoke(app, ["validate", "--data", str(bad)])
    assert failed.exit_code == 1
    assert "health_checks" in failed.output and "latency_ms" in failed.output and "-12.5" in failed.output


@pytest.mark.e2e
def test_run_decide_verify_from_the_command_line(
    prefect_harness, small_sample: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "qres.toml").write_text(
        f'data_dir = "{small_sample}"\nseed = 9\n[solve]\ntime_limit_s = 1.0\nanneal_num_reads = 4\nanneal_num_sweeps = 100\n'
    )
    assert runner.invoke(app, ["keys", "init", "--exist-ok"]).exit_code == 0  # as `make run` does
    run = runner.invoke(app, ["run", "--json"])
    assert run.exit_code == 0, run.output
    summary = json.loads(run.stdout)
    assert summary["published"] and Path(summary["bundle_path"]).is_dir()
    assert (tmp_path / ".qres" / "mlflow.db").is_file(), "state stays in the project folder"
    decide = runner.invoke(app, ["decide", "--json", "--down", "region-eu-west"])
    assert decide.exit_code == 0, decide.output
    answer = json.loads(decide.stdout)
    assert answer["version"] == summary["bundle_version"] and answer["actions"]
    unknown = [
        json.loads(runner.invoke(app, ["decide", "--json", "--down", "no-such-service", *extra]).stdout)
        for extra in ([], ["--unmatched", "cover"])
    ]
    assert [u["scenario"] for u in unknown] == ["greedy:observed", "fallback:all-down"]
    assert any(a["admit"] > 0 for a in unknown[0]["actions"]) and not any(a["admit"] > 0 for a in unknown[1]["actions"])
    bad = runner.invoke(app, ["decide", "--unmatched", "closest"])
    assert bad.exit_code == 1 and "--unmatched must be one of" in bad.output
    verify = runner.invoke(app, ["verify"])
    assert verify.exit_code == 0 and summary["bundle_version"] in verify.output
    target = Path(summary["bundle_path"]) / "policy.json"
    data = bytearray(target.read_bytes())
    data[10] ^= 0x20
    target.write_bytes(bytes(data))
    tampered = runner.invoke(app, ["verify"])
    assert tampered.exit_code == 1 and "policy.json" in tampered.output


def test_run_with_bad_config_fails_with_a_named_setting(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "qres.toml").write_text("[solve]\ntime_limit_s = -1\n")
    result = runner.invoke(app, ["run"])
    assert result.exit_code == 1 and "time_limit_s" in result.output
