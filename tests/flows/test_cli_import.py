"""`qres import upptime` prints a summary a person can check, and keeps template sites on request."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from flows.cli.app import app
from tests.policies.importers.upptime_builder import History


def _history(folder: Path) -> Path:
    h = History().sites(0, Google="https://www.google.com", Shop="https://shop.test")
    h.check(0, "google", "down").sites(0.5, Shop="https://shop.test").delete(1, "google")
    return (
        h.every(1, 100, "shop", url="https://shop.test")
        .check(50, "shop", "down", url="https://shop.test")
        .write(folder)
    )


def test_import_upptime_prints_the_summary(tmp_path: Path) -> None:
    src = _history(tmp_path / "src")
    result = CliRunner().invoke(app, ["import", "upptime", str(src), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "dropped google: Upptime template placeholder" in result.output
    assert "kept shop: 1 down event(s)" in result.output
    summary = json.loads((tmp_path / "out" / "_import_summary.json").read_text())
    assert [s["site"] for s in summary["sites"] if not s["kept"]] == ["google"]
    keep = ["import", "upptime", str(src), "--out", str(tmp_path / "keep"), "--keep-template-sites"]
    result = CliRunner().invoke(app, keep)
    assert result.exit_code == 0 and "kept google" in result.output


def test_import_gcp_and_aws_print_their_summaries(tmp_path: Path) -> None:
    from tests.policies.importers.test_cloud_importers import GCP, _aws_doc

    (tmp_path / "gcp.json").write_text(json.dumps(GCP))
    (tmp_path / "aws.json").write_text(json.dumps(_aws_doc()))
    gcp = CliRunner().invoke(app, ["import", "gcp", str(tmp_path / "gcp.json"), "--out", str(tmp_path / "g")])
    assert gcp.exit_code == 0, gcp.output
    assert "kept google-cloud-storage" in gcp.output and "never resolved" in gcp.output
    aws = CliRunner().invoke(app, ["import", "aws", str(tmp_path / "aws.json"), "--out", str(tmp_path / "a")])
    assert aws.exit_code == 0, aws.output
    assert "kept amazon-s3-oregon" in aws.output


def test_validate_warns_about_a_site_that_stopped_but_passes(tmp_path: Path) -> None:
    h = History().sites(0, Shop="https://shop.test", Old="https://old.test")
    h.every(0, 400, "shop", url="https://shop.test").every(0, 100, "old", url="https://old.test")
    h.every(106, 400, "old", "down", url="https://old.test")  # down until the end: cut, then silent
    h.write(tmp_path / "src")
    res = CliRunner().invoke(app, ["import", "upptime", str(tmp_path / "src"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 0 and "probably retired" in res.output
    res = CliRunner().invoke(app, ["validate", "--data", str(tmp_path / "out"), "--json"])
    assert res.exit_code == 0, res.output
    warnings = json.loads(res.stdout)["warnings"]
    assert [w["service_id"] for w in warnings if w["rule"] == "not checked too long"] == ["old"]
    assert any(w["rule"] == "too few outages" for w in warnings)
