"""A real Prefect server on loopback: deploy from deployments/prefect.yaml, trigger `resolve` by event.

Starts `prefect server start` (own PREFECT_HOME and SQLite in tmp, a free port), a process
work pool and a worker, runs `prefect deploy --all` twice (it creates the global concurrency
limits once), sends `qres notify-incident`, and
waits for the re-solve to publish. Every process started here runs in its own process
group and is killed in `finally`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import httpx
import pytest

from policies.telemetry.incidents import append_incident_day
from tests.waits import WAIT_S

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _wait_some(predicate, timeout_s: float) -> bool:
    """Like _wait, but a timeout is an answer (False), not a failure."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return False


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _server_env(tmp_path: Path, cfg: Path, api: str, **extra: str) -> dict[str, str]:
    """The environment of every process around a real server: its own home and SQLite in tmp."""
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_API_URL": api,
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_CLI_PROMPT": "false",
        "QRES_CONFIG": str(cfg),
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        **extra,
    }
    env.pop("PREFECT_SERVER_EPHEMERAL_ENABLED", None)
    return env


def _stop(procs: list[subprocess.Popen], timeout_s: float = 20) -> None:
    """Stop each process group by its leader's pid, the last started first, each gone before the
    next is stopped (a worker stopping pauses its deployments on the server it needs); kill what
    lingers."""
    for p in reversed(procs):
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        try:
            p.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def test_event_triggers_resolve_on_a_real_server(small_sample: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(small_sample, data)
    append_incident_day(data, dependency="saas-maps", incident_id="INC-7777", outage_min=60)
    cfg = tmp_path / "qres.toml"
    cfg.write_text(
        f'data_dir = "{data}"\nstore_dir = "{tmp_path / "bundles"}"\nstate_dir = "{tmp_path / "state"}"\n'
        "seed = 5\n[solve]\ntime_limit_s = 1.0\nanneal_num_reads = 4\nanneal_num_sweeps = 100\n"
        "[backtest]\nenabled = false\n[bundle]\nallow_unsigned = true\n"
    )
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = _server_env(tmp_path, cfg, api, PREFECT_LOGGING_LEVEL="INFO", QRES_PROJECT_DIR=str(ROOT))
    procs: list[subprocess.Popen] = []
    logs = tmp_path / "logs"
    logs.mkdir()

    def start(name: str, *args: str) -> None:
        out = (logs / f"{name}.log").open("wb")
        procs.append(
            subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        )

    def run(*args: str) -> None:
        done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, timeout=60)
        assert done.returncode == 0, (args[1:], done.stdout.decode()[-2000:], done.stderr.decode()[-2000:])

    try:
        start("server", str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port))
        _wait(lambda: _healthy(api), WAIT_S, "the Prefect server")
        run(str(BIN / "prefect"), "work-pool", "create", "qres-process", "--type", "process")
        # The deployment set-up creates the production locks (docs/operations.md), and again is a no-op
        limits = {}
        for _ in range(2):
            run(str(BIN / "prefect"), "--no-prompt", "deploy", "--prefect-file", "deployments/prefect.yaml", "--all")
            found = [  # beside the deployments' own limits ("deployment:<id>")
                g
                for g in httpx.post(f"{api}/v2/concurrency_limits/filter", json={"limit": 200}).json()
                if g["name"].startswith("qres-")
            ]
            assert sorted((g["name"], g["limit"], g["active"]) for g in found) == [
                ("qres-publish", 1, True),
                ("qres-run", 1, True),
            ], found
            limits = limits or {g["name"]: g["id"] for g in found}
            assert {g["name"]: g["id"] for g in found} == limits  # the same limits, not new ones
        start("worker", str(BIN / "prefect"), "worker", "start", "--pool", "qres-process")

        def triggered() -> list[dict]:  # the resolve run (the others are the nightly's scheduled runs)
            return [r for r in httpx.post(f"{api}/flow_runs/filter", json={}).json() if r["parameters"]]

        def notified() -> bool:
            """Send the event; True once the trigger made a run. The server loads a new automation
            asynchronously, so an event sent before that is not matched: send again (no run exists
            yet, so a second event cannot start a second run)."""
            if not triggered():
                run(
                    str(BIN / "qres"),
                    "notify-incident",
                    "INC-7777",
                    "--dependencies",
                    "saas-maps,region-eu-west",
                    "--config",
                    str(cfg),
                )
                _wait_some(triggered, 15)
            return bool(triggered())

        _wait(notified, WAIT_S, "the event to trigger the resolve deployment")
        latest = tmp_path / "bundles" / "shedding" / "LATEST"
        try:
            _wait(latest.exists, WAIT_S, "the re-solve to publish")
        except AssertionError:
            tail = "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(logs.glob("*.log")))
            raise AssertionError(f"no bundle published; logs:\n{tail}") from None
        assert latest.read_text().strip() == "v000001"
        _wait(lambda: [r["state_type"] for r in triggered()] == ["COMPLETED"], WAIT_S, "the re-solve run to complete")
        assert triggered()[0]["parameters"] == {"incident": "INC-7777", "dependencies": "saas-maps,region-eu-west"}
        messages = [
            m["message"]
            for m in httpx.post(
                f"{api}/logs/filter", json={"logs": {"flow_run_id": {"any_": [triggered()[0]["id"]]}}, "limit": 200}
            ).json()
        ]
        assert any("dependencies in scope: region-eu-west, saas-maps" in m for m in messages), messages[:20]
        _wait(
            lambda: all(
                httpx.get(f"{api}/v2/concurrency_limits/{lock}").json()["active_slots"] == 0
                for lock in ("qres-run", "qres-publish")
            ),
            WAIT_S,
            "the locks to be released",
        )
    finally:
        _stop(procs, timeout_s=10)
