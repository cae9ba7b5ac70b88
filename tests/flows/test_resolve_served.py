"""`qres resolve` hands the re-solve to a warm `qres serve-flows` worker (flows/handoff.py).

One real server on loopback (as tests/flows/test_server.py, whose helpers this reuses), one
`qres serve-flows`, one `qres resolve`: it must run on the worker, print the flow's summary and
exit as in-process, and import neither Prefect nor the pipeline itself.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from policies.telemetry.incidents import append_incident_day
from tests.flows.test_server import BIN, ROOT, _free_port, _healthy, _server_env, _stop, _wait
from tests.waits import WAIT_S

# What the client must not load: `qres resolve` on a warm worker pays for none of it.
HEAVY = ("prefect", "mlflow", "great_expectations", "pandas", "ortools", "flows.resolve", "flows.nightly")
CLIENT = """
import sys
from flows.cli.app import app
try:
    app(sys.argv[1:])
finally:
    loaded = sorted(m for m in {heavy!r} if m in sys.modules)
    print("LOADED:" + ",".join(loaded), file=sys.stderr)
"""


def test_resolve_needs_a_server_for_served(monkeypatch) -> None:
    from flows.cli.app import app

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    res = CliRunner().invoke(app, ["resolve", "--incident", "INC-1", "--served"])
    assert res.exit_code == 1
    said = " ".join(res.output.split())  # rich wraps the line
    assert "no worker serves qres-resolve/resolve (PREFECT_API_URL is not set)" in said


class _Deployment:
    """A Prefect API that answers the deployment read with ``dep`` (what served_deployment reads)."""

    def __init__(self, dep: dict | None) -> None:
        self.dep = dep

    def call(self, method: str, path: str, body=None):
        assert (method, path) == ("GET", "/deployments/name/qres-resolve/resolve")
        return self.dep


def test_only_a_recently_polled_ready_deployment_takes_the_re_solve() -> None:
    from datetime import UTC, datetime, timedelta

    from flows.handoff import served_deployment

    def dep(status="READY", polled_s_ago=2.0, paused=False) -> dict:
        polled = (datetime.now(UTC) - timedelta(seconds=polled_s_ago)).isoformat().replace("+00:00", "Z")
        return {"id": "d1", "status": status, "last_polled": polled, "paused": paused}

    assert served_deployment(_Deployment(dep()))["id"] == "d1"
    assert served_deployment(_Deployment(None)) is None  # no such deployment (404)
    assert served_deployment(_Deployment(dep(status="NOT_READY"))) is None
    assert served_deployment(_Deployment(dep(polled_s_ago=300))) is None  # its worker stopped
    assert served_deployment(_Deployment(dep(paused=True))) is None


@pytest.mark.e2e
def test_resolve_hands_off_to_a_served_worker(small_sample: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(small_sample, data)
    append_incident_day(data, dependency="saas-maps", incident_id="INC-8888", outage_min=60)
    cfg = tmp_path / "qres.toml"
    cfg.write_text(
        f'data_dir = "{data}"\nstore_dir = "{tmp_path / "bundles"}"\nstate_dir = "{tmp_path / "state"}"\n'
        "seed = 5\n[solve]\ntime_limit_s = 1.0\nanneal_num_reads = 4\nanneal_num_sweeps = 100\n"
        "[backtest]\nenabled = false\n[bundle]\nallow_unsigned = true\n"
    )
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = _server_env(tmp_path, cfg, api)
    procs: list[subprocess.Popen] = []
    logs = tmp_path / "logs"
    logs.mkdir()

    def start(name: str, *args: str) -> None:
        out = (logs / f"{name}.log").open("wb")
        procs.append(
            subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        )

    def ready() -> bool:
        dep = httpx.get(f"{api}/deployments/name/qres-resolve/resolve", timeout=10)
        return dep.status_code == 200 and dep.json()["status"] == "READY"

    try:
        start("server", str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port))
        _wait(lambda: _healthy(api), WAIT_S, "the Prefect server")
        start("serve-flows", str(BIN / "qres"), "serve-flows")
        _wait(ready, WAIT_S, "the served resolve deployment to be polled")
        client = [sys.executable, "-c", CLIENT.format(heavy=HEAVY), "resolve", "--incident", "INC-8888"]
        done = subprocess.run([*client, "--json"], cwd=tmp_path, env=env, capture_output=True, timeout=WAIT_S)
        tail = "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(logs.glob("*.log")))
        assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:], tail)
        assert done.stderr.decode().strip().splitlines()[-1] == "LOADED:", done.stderr[-2000:]
        summary = json.loads(done.stdout)
        runs = httpx.post(f"{api}/flow_runs/filter", json={}).json()  # and the nightly's scheduled ones
        (run,) = [r for r in runs if r["parameters"].get("incident") == "INC-8888"]
        assert summary["ran"] == f"on the served worker (flow run {run['name']})"
        assert run["state_type"] == "COMPLETED"
        assert summary["published"] and summary["incidents"] == ["INC-8888"] and "saas-maps" in summary["scope"]
        latest = (tmp_path / "bundles" / "shedding" / "LATEST").read_text().strip()
        assert summary["bundle_version"] == latest == "v000001"
        # A refusal on the worker comes back as the command's own one-line error and exit code.
        unknown = subprocess.run(
            [*client[:-1], "INC-NOPE", "--served"], cwd=tmp_path, env=env, capture_output=True, timeout=WAIT_S
        )
        assert unknown.returncode == 1, (unknown.stdout[-2000:], unknown.stderr[-3000:])
        assert b"error:" in unknown.stderr and b"INC-NOPE" in unknown.stderr
    finally:
        _stop(procs)
