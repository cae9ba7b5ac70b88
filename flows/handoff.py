"""Hand ``qres resolve`` to a warm ``qres serve-flows`` worker, over Prefect's REST API.

A fresh ``qres resolve`` pays per process what a served worker has paid once (imports,
Prefect's temporary server, MLflow's store: two thirds of a command-line re-solve, see
docs/performance.md). When a worker serves ``qres-resolve/resolve`` on ``PREFECT_API_URL``,
the command creates a run of that deployment and waits for it instead.

Why urllib and not Prefect's client: importing ``prefect.client`` costs about 1.3 s of CPU,
a large share of the 25% goal; the three calls needed here (read the deployment, create a
run, read the run and its result artifact) are plain JSON over HTTP. The flow's summary comes
back as a JSON artifact the flow writes (``RESULT_ARTIFACT``, flows/resolve.py), so the
command prints the same summary and exits with the same code as in-process; nothing is
pickled and nothing needs a file system shared with the worker.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["DEPLOYMENT", "RESULT_ARTIFACT", "PrefectREST", "HandOff", "served_deployment", "hand_off", "api_url"]

DEPLOYMENT = "qres-resolve/resolve"
RESULT_ARTIFACT = "qres-resolve-result"
TERMINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
# A runner polls for runs every 0.25 s (flows/served.py); Prefect's server marks a deployment
# NOT_READY after 60 s without a poll, and so does this check (a worker stopped since).
POLLED_WITHIN_S = 60.0
# The status codes Prefect's client retries, and the first back-off (doubled per attempt).
RETRY_CODES = frozenset({408, 429, 502, 503})
RETRY_BASE_S = 0.25


def api_url() -> str | None:
    """The Prefect server named in the environment (what ``qres serve-flows`` requires too)."""
    return os.environ.get("PREFECT_API_URL") or None


class PrefectREST:
    """JSON calls to a Prefect server, authenticated as Prefect's own client would be."""

    def __init__(self, url: str, *, timeout_s: float = 10.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"PREFECT_API_URL must be an http(s) URL, not {url!r}")
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.connected = False  # set by the first answer: only then is a reset connection retried
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key := os.environ.get("PREFECT_API_KEY"):
            self.headers["Authorization"] = f"Bearer {key}"
        elif auth := os.environ.get("PREFECT_API_AUTH_STRING"):
            import base64

            self.headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """The decoded JSON answer; ``None`` on 404; other HTTP errors and network errors raise.

        Retried as Prefect's own client retries (prefect.client.base): on 408, 429, 502 and 503
        (a SQLite-backed server answers 503 while its database is locked by the worker's writes)
        and, once connected, on a reset connection; up to ``PREFECT_CLIENT_MAX_RETRIES`` times,
        waiting ``Retry-After`` or an exponential back-off. A first connection that fails is not
        retried, so a server that is down fails fast."""
        import urllib.error

        retries = int(os.environ.get("PREFECT_CLIENT_MAX_RETRIES", "5"))
        data = None if body is None else json.dumps(body).encode()
        for attempt in range(retries + 1):
            try:
                raw = self._send(method, path, data)
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    return None
                if exc.code not in RETRY_CODES or attempt == retries:
                    raise
                time.sleep(_retry_after(exc.headers.get("Retry-After")) or RETRY_BASE_S * 2**attempt)
                continue
            except ConnectionResetError:  # includes http.client.RemoteDisconnected
                if not self.connected or attempt == retries:
                    raise
                time.sleep(RETRY_BASE_S * 2**attempt)
                continue
            self.connected = True
            return json.loads(raw) if raw else None
        raise AssertionError("unreachable")  # the last attempt returns or raises

    def _send(self, method: str, path: str, data: bytes | None) -> bytes:
        import urllib.request  # here: the CLI's top level imports this module (tests/flows/test_cli_startup.py)

        req = urllib.request.Request(  # noqa: S310 - http(s) only, checked in __init__
            f"{self.url}{path}", data=data, method=method, headers=self.headers
        )
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310 - http(s) only, checked in __init__
            self.connected = True
            return resp.read()


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header given in seconds (an HTTP date is ignored)."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _recently_polled(deployment: dict, now: datetime) -> bool:
    polled = deployment.get("last_polled")
    if not polled:
        return False
    at = datetime.fromisoformat(polled.replace("Z", "+00:00"))
    return (now - at).total_seconds() <= POLLED_WITHIN_S


def served_deployment(api: PrefectREST) -> dict | None:
    """The ``qres-resolve/resolve`` deployment when a worker is polling for its runs; else None
    (no such deployment, paused, not polled for a minute, or the server does not answer)."""
    try:
        dep = api.call("GET", f"/deployments/name/{DEPLOYMENT}")
    except OSError:  # URLError, HTTPError and timeouts are all OSErrors
        return None
    if not dep or dep.get("paused") or dep.get("status") != "READY":
        return None
    return dep if _recently_polled(dep, datetime.now(UTC)) else None


@dataclass(frozen=True)
class HandOff:
    """A finished run of the served deployment and what its flow recorded (None if nothing)."""

    flow_run: dict
    result: dict | None

    @property
    def state(self) -> str:
        return self.flow_run["state_type"]

    @property
    def message(self) -> str:
        return (self.flow_run.get("state") or {}).get("message") or ""


def _result(api: PrefectREST, flow_run_id: str) -> dict | None:
    found = api.call(
        "POST",
        "/artifacts/filter",
        {
            "artifacts": {"flow_run_id": {"any_": [flow_run_id]}, "key": {"any_": [RESULT_ARTIFACT]}},
            "sort": "CREATED_DESC",
            "limit": 1,
        },
    )
    if not found:
        return None
    data = found[0]["data"]
    return json.loads(data) if isinstance(data, str) else data


def hand_off(
    api: PrefectREST,
    deployment: dict,
    parameters: dict[str, Any],
    *,
    timeout_s: float,
    poll_s: float = 0.1,
    on_created: Callable[[dict], None] | None = None,
) -> HandOff:
    """Create a run of ``deployment`` with ``parameters``, wait until it ends, read its result.

    ``timeout_s`` bounds the wait (the flow's own timeout plus a start margin); past it the run
    is left to the worker and TimeoutError says which run it was."""
    run = api.call("POST", f"/deployments/{deployment['id']}/create_flow_run", {"parameters": parameters})
    if on_created is not None:
        on_created(run)
    deadline = time.monotonic() + timeout_s
    while run["state_type"] not in TERMINAL:
        if time.monotonic() > deadline:
            raise TimeoutError(f"flow run {run['name']} ({run['id']}) did not end within {timeout_s:.0f} s")
        time.sleep(poll_s)
        run = api.call("GET", f"/flow_runs/{run['id']}")
    return HandOff(run, _result(api, run["id"]))
