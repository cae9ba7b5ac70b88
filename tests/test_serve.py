"""`qres-serve` over real HTTP on loopback: decisions equal `qres decide --json`, health, metrics, OpenAPI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli.app import app
from policies.bundle.store import set_latest
from tests.policies.test_client import KEY, decisions_table, publish_policy


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def _wait(predicate, what: str, limit_s: float = 90.0):
    deadline = time.monotonic() + limit_s
    while True:
        try:
            got = predicate()
            if got:
                return got
        except OSError:
            pass
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class Served:
    def __init__(
        self, store: Path, key_file: Path, tmp: Path, *extra: str, command=(sys.executable, "-m", "qres_client.serve")
    ) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (tmp / f"serve-{self.port}.log").open("w")
        argv = [str(store), "--public-key", str(key_file), "--port", str(self.port), "--refresh-s", "0.2", *extra]
        self.proc = subprocess.Popen([*command, *argv], stderr=self.log)

    def up(self) -> bool:
        assert self.proc.poll() is None, "qres-serve exited"
        try:
            return _get(self.url + "/healthz")[0] in (200, 503)
        except urllib.error.URLError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture
def keyfile(tmp_path: Path) -> Path:
    path = tmp_path / "qres-signing.pub"
    path.write_text(KEY.public.to_json(), encoding="ascii")
    return path


def _metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_serve_answers_like_qres_decide_and_exposes_health_metrics_openapi(tmp_path, keyfile, monkeypatch):
    store = tmp_path / "store"
    store.mkdir()
    served = Served(store, keyfile, tmp_path)
    try:
        _wait(served.up, "the server to listen")
        status, _, body = _get(served.url + "/healthz")
        assert status == 503 and json.loads(body)["ready"] is False  # nothing verified yet
        assert _get(served.url + "/v1/decide?down=auth")[0] == 503

        publish_policy(store)
        _wait(lambda: _get(served.url + "/healthz")[0] == 200, "a verified bundle")
        assert json.loads(_get(served.url + "/healthz")[2])["versions"] == {"shedding": "v000001"}

        monkeypatch.setenv("QRES_PUBLIC_KEY", KEY.public.to_json())
        monkeypatch.chdir(tmp_path)
        for query, cli in [
            ("policy=shedding&down=auth", ["--down", "auth"]),
            ("down=auth,pay", ["--down", "auth,pay"]),
            ("degraded=db", ["--degraded", "db"]),
            ("down=q", ["--down", "q"]),
        ]:
            status, _, body = _get(f"{served.url}/v1/decide?{query}")
            res = CliRunner().invoke(app, ["decide", "--json", "--store", str(store), *cli])
            assert status == 200 and res.exit_code == 0, (body, res.output)
            assert json.loads(body) == json.loads(res.stdout), query

        status, headers, body = _get(served.url + "/v1/decide?down=auht")
        assert status == 200 and "closest known: auth" in headers["x-qres-warning"]
        assert _get(served.url + "/v1/decide?policy=standby")[0] == 503  # a family, not published here
        assert _get(served.url + "/v1/decide?policy=nosuch")[0] == 404

        # A rollback-free move to v000002 is picked up in the background; a bad LATEST is refused.
        publish_policy(store, decisions_table(version_tag=0.1))
        _wait(lambda: json.loads(_get(served.url + "/v1/decide?down=auth")[2])["version"] == "v000002", "v000002")

        def failures() -> float:
            return _metric(_get(served.url + "/metrics")[2].decode(), 'qres_refresh_total{result="failure"}')

        before = failures()
        (store / "shedding" / "LATEST").write_text("garbage\n")
        _wait(lambda: failures() > before, "a counted refresh failure")
        assert json.loads(_get(served.url + "/v1/decide?down=auth")[2])["version"] == "v000002"
        set_latest(store, "shedding", "v000002")

        metrics = _get(served.url + "/metrics")[2].decode()
        assert 'qres_bundle_version{policy="shedding"} 2.0' in metrics
        assert 0 <= _metric(metrics, 'qres_bundle_age_seconds{policy="shedding"}') < 600
        assert _metric(metrics, 'qres_refresh_total{result="success"}') >= 2
        assert _metric(metrics, 'qres_decisions_total{match="exact",policy="shedding"}') >= 4
        assert _metric(metrics, 'qres_decisions_total{match="unmatched",policy="shedding"}') >= 1
        assert _metric(metrics, 'qres_decide_latency_seconds_count{policy="shedding"}') >= 6

        spec = json.loads(_get(served.url + "/openapi.json")[2])
        assert spec["openapi"].startswith("3.") and "/v1/decide" in spec["paths"]
    finally:
        served.stop()


def test_console_script_serves_and_refuses_unknown_names_when_told(tmp_path, keyfile):
    """The client distribution's own `qres-serve` script: a service needs nothing of the pipeline."""
    script = Path(sys.executable).parent / "qres-serve"
    assert os.access(script, os.X_OK)
    store = tmp_path / "store"
    publish_policy(store)
    served = Served(store, keyfile, tmp_path, "--unknown", "refuse", command=(str(script),))
    try:
        _wait(lambda: served.up() and _get(served.url + "/healthz")[0] == 200, "ready")
        status, _, body = _get(served.url + "/v1/decide?down=pays")
        assert status == 400 and "closest known: pay" in json.loads(body)["error"]
    finally:
        served.stop()


def test_pipeline_cli_has_qres_serve():
    res = CliRunner().invoke(app, ["serve", "--help"])
    assert res.exit_code == 0 and "/v1/decide" in res.output and "--refresh-s" in res.output
