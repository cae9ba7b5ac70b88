"""Sources for real: a folder served by `python -m http.server` on loopback, read over http://."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from policies.telemetry.ingest import load_telemetry
from policies.telemetry.watermark import commit_ingest, ingest_incremental

QRES = Path(sys.executable).with_name("qres")


@pytest.fixture
def served(small_sample: Path, tmp_path: Path):
    """The sample behind a real static HTTP server (folder listings, as the source contract wants)."""
    root = tmp_path / "www"
    shutil.copytree(small_sample, root)
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "http.server", "--bind", "127.0.0.1", "0"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        port = re.search(r"port (\d+)", proc.stdout.readline()).group(1)
        yield f"http://127.0.0.1:{port}/", root
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_http_source_reads_what_the_folder_holds(served, small_sample: Path, tmp_path: Path) -> None:
    url, root = served
    over_http = load_telemetry(url)
    assert over_http.sha256 == load_telemetry(small_sample).sha256
    assert over_http.files["health_checks"][0].uri.startswith(url)
    # Listings over http carry no modification time: every file is read and hashed, and the
    # unchanged ones are recognised by their sha256, so nothing new is stored.
    first = ingest_incremental(url, tmp_path / "state")
    commit_ingest(first)
    again = ingest_incremental(url, tmp_path / "state")
    assert again.extra["ingest"]["reused"] == len([f for fs in again.files.values() for f in fs])
    assert again.sha256 == first.sha256 and commit_ingest(again) is False


def test_qres_validate_takes_an_http_source(served, tmp_path: Path) -> None:
    url, _ = served
    run = subprocess.run(
        [str(QRES), "validate", "--data", url], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "all rules passed" in run.stdout
