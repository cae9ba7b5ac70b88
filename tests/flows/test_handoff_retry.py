"""The hand-off's REST client retries what Prefect's own client retries, and nothing else.

A real HTTP server on loopback answers with scripted status codes; the client must get through
a locked database's 503s, give up after ``PREFECT_CLIENT_MAX_RETRIES``, and not retry a 400.
"""

from __future__ import annotations

import json
import threading
import urllib.error
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from flows.handoff import PrefectREST


class _Scripted(BaseHTTPRequestHandler):
    script: list[int] = []
    seen: list[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        code = self.script.pop(0) if self.script else 200
        body = json.dumps({"ok": True}).encode() if code == 200 else b'{"detail": "database is locked"}'
        self.send_response(code)
        if code == 503:
            self.send_header("Retry-After", "0")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # quiet test output
        pass


@pytest.fixture
def server():
    _Scripted.script, _Scripted.seen = [], []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/api"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=30)


def test_it_gets_through_a_locked_database(server, monkeypatch) -> None:
    monkeypatch.setenv("PREFECT_CLIENT_MAX_RETRIES", "5")
    _Scripted.script = [503, 503, 502]
    assert PrefectREST(server).call("GET", "/flow_runs/x") == {"ok": True}
    assert _Scripted.seen == ["/api/flow_runs/x"] * 4


def test_it_gives_up_after_the_configured_retries(server, monkeypatch) -> None:
    monkeypatch.setenv("PREFECT_CLIENT_MAX_RETRIES", "2")
    _Scripted.script = [503] * 10
    with pytest.raises(urllib.error.HTTPError) as raised:
        PrefectREST(server).call("GET", "/flow_runs/x")
    assert raised.value.code == 503 and len(_Scripted.seen) == 3


def test_a_client_error_is_not_retried(server) -> None:
    _Scripted.script = [400, 200]
    with pytest.raises(urllib.error.HTTPError) as raised:
        PrefectREST(server).call("GET", "/flow_runs/x")
    assert raised.value.code == 400 and len(_Scripted.seen) == 1
