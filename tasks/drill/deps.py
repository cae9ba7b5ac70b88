"""A dependency stand-in: a tiny stdlib HTTP server that answers like the API or pool it plays.

``GET /health`` answers 200; any ``POST`` waits ``--work-ms`` (the call's own work) and answers
200 with a small JSON body. Run: ``python -m tasks.drill.deps --role payment --work-ms 5``.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler

from tasks.drill.lifetime import LoopbackServer, announce, bounded


def make_handler(role: str, work_s: float):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def _send(self, code: int, doc: dict) -> None:
            body = json.dumps(doc).encode()
            try:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the caller gave up (its timeout): nothing to answer
                pass

        def do_GET(self) -> None:
            self._send(200 if self.path == "/health" else 404, {"role": role, "ok": self.path == "/health"})

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            time.sleep(work_s)
            self._send(200, {"role": role, "ok": True})

        def log_message(self, *args) -> None:  # the drill's log is the timeline, not access lines
            pass

    return Handler


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--role", required=True)
    ap.add_argument("--work-ms", type=float, default=5.0)
    ap.add_argument("--max-s", type=float, default=300.0)
    args = ap.parse_args(argv)
    server = LoopbackServer(make_handler(args.role, args.work_ms / 1000))
    bounded(args.max_s, lambda: threading.Thread(target=server.shutdown, daemon=True).start())
    announce(str(server.server_address[1]))
    server.serve_forever(poll_interval=0.1)
    server.server_close()


if __name__ == "__main__":
    main()
