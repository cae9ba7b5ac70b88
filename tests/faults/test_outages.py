"""Outages against a real MLflow server on loopback: fail fast, one line, nothing published.

Each case runs ``qres run`` as a process (as cron or a worker would) and asserts its exit
code, that stderr+stdout name what is down in one line without a traceback, that no bundle
version moved LATEST, that the inputs are byte-identical, and how long it took to fail.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _project(tmp: Path, data: Path, port: int) -> Path:
    cfg = tmp / "qres.toml"
    cfg.write_text(
        f'data_dir = "{data}"\nstore_dir = "bundles"\nstate_dir = "state"\nseed = 5\n'
        "[solve]\ntime_limit_s = 1.0\nanneal_num_reads = 4\nanneal_num_sweeps = 100\n"
        f'[mlflow]\ntracking_uri = "http://127.0.0.1:{port}"\n'
    )
    subprocess.run([BIN / "qres", "keys", "init", "-c", str(cfg)], check=True, capture_output=True, cwd=tmp)
    return cfg


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _nothing_published(tmp: Path) -> None:
    latest = list((tmp / "bundles").glob("*/LATEST")) if (tmp / "bundles").exists() else []
    assert latest == [], f"LATEST written: {latest}"


def _error_line(out: str) -> str:
    assert "Traceback" not in out, out[-3000:]
    lines = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, out[-3000:]
    return lines[0]


def _run(cfg: Path, tmp: Path) -> subprocess.Popen:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "COLUMNS": "400"}
    return subprocess.Popen(
        [BIN / "qres", "run", "-c", str(cfg), "--quiet"],
        cwd=tmp,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_tracking_server_down_at_start_fails_in_seconds(small_sample: Path, tmp_path: Path) -> None:
    port = _free_port()  # nothing listens there
    cfg = _project(tmp_path, small_sample, port)
    before = _tree(small_sample)
    started = time.monotonic()
    proc = _run(cfg, tmp_path)
    out, _ = proc.communicate(timeout=120)
    took = time.monotonic() - started
    assert proc.returncode == 1, out[-3000:]
    line = _error_line(out)
    assert f"tracking store http://127.0.0.1:{port} is unreachable" in line and "nothing was published" in line, line
    assert took < 60, f"took {took:.1f} s to fail"
    _nothing_published(tmp_path)
    assert _tree(small_sample) == before


def _wait(predicate, limit_s: float, what: str) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_tracking_server_killed_mid_run_fails_fast(small_sample: Path, tmp_path: Path) -> None:
    port = _free_port()
    db = tmp_path / "mlflow-server.db"
    server = subprocess.Popen(
        [
            BIN / "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{db}",
            "--workers",
            "1",
        ],
        cwd=tmp_path,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the server and the uvicorn workers it starts
    )
    try:

        def up() -> bool:
            assert server.poll() is None, "mlflow server exited"
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        _wait(up, 180, "the mlflow server")
        cfg = _project(tmp_path, small_sample, port)

        def run_started() -> bool:
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
                    return con.execute("select count(*) from runs").fetchone()[0] > 0
            except sqlite3.Error:
                return False

        proc = _run(cfg, tmp_path)
        _wait(lambda: run_started() or proc.poll() is not None, 600, "the run to reach MLflow")
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        os.killpg(server.pid, signal.SIGKILL)  # by its pid (the group it leads)
        server.wait(timeout=30)
        killed = time.monotonic()
        out, _ = proc.communicate(timeout=300)
        took = time.monotonic() - killed
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
    assert proc.returncode == 1, out[-3000:]
    line = _error_line(out)
    assert f"tracking store http://127.0.0.1:{port} failed during the run" in line, line
    assert "nothing was published" in line, line
    assert took < 60, f"took {took:.1f} s to fail after the kill"
    _nothing_published(tmp_path)
