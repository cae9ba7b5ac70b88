"""What every drill process shares: announce the port, stop on SIGTERM, never outlive its bound."""

from __future__ import annotations

import signal
import sys
import threading
import time
from http.server import ThreadingHTTPServer

__all__ = ["announce", "wait_start", "bounded", "LoopbackServer"]


class LoopbackServer(ThreadingHTTPServer):
    """A threading HTTP server on 127.0.0.1 (ephemeral port) that does not log callers hanging up.

    Why: under injected faults callers time out and reset connections all the time; that is the
    drill working, not an error worth a traceback in the log.
    """

    daemon_threads = True

    def __init__(self, handler, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), handler)

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def announce(what: str) -> None:
    """Tell the orchestrator this process is ready (one line on stdout)."""
    sys.stdout.write(f"READY {what}\n")
    sys.stdout.flush()


def wait_start() -> float:
    """Block until the orchestrator writes ``START <epoch>``; returns that epoch (the load's t = 0)."""
    line = sys.stdin.readline().split()
    if len(line) != 2 or line[0] != "START":
        raise SystemExit(f"expected 'START <epoch>' on stdin, got {line!r}")
    return float(line[1])


def bounded(max_s: float, stop) -> threading.Event:
    """Call ``stop()`` on SIGTERM/SIGINT or after ``max_s`` seconds, whichever comes first.

    Why: the orchestrator stops every process by its pid, but a drill process whose orchestrator
    died (kill -9) must still go away by itself.
    """
    done = threading.Event()

    def _stop(*_args) -> None:
        done.set()
        stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    deadline = time.monotonic() + max_s
    threading.Thread(target=lambda: done.wait(max(0.0, deadline - time.monotonic())) or _stop(), daemon=True).start()
    return done
