"""The one HTTP client of the connectors (plain urllib: no new dependency for a few GETs).

Every failure the user can fix becomes one :class:`ConnectorError` line: an unreachable server,
a refused credential (401/403: which environment variable to set, never its value), a bad
request (the server's own message). Timeouts, 429 and 5xx are retried with exponential backoff;
a ``Retry-After`` header (seconds) is honoured, capped at ``max_wait_s``.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from policies.errors import QresError

__all__ = ["ConnectorError", "HttpClient", "auth_headers"]

_RETRY_CODES = (429, 500, 502, 503, 504)


class ConnectorError(QresError):
    """A telemetry source refused or could not be reached; nothing was written."""


def auth_headers(token_env: str | None, user_env: str | None, password_env: str | None) -> dict[str, str]:
    """Bearer token or basic auth from the named environment variables (values never logged)."""
    token = os.environ.get(token_env or "") if token_env else None
    if token:
        return {"Authorization": f"Bearer {token}"}
    user = os.environ.get(user_env or "") if user_env else None
    if user:
        raw = f"{user}:{os.environ.get(password_env or '', '') if password_env else ''}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
    return {}


@dataclass
class HttpClient:
    """GET JSON with retries; ``name`` and ``auth_hint`` make the error lines specific."""

    name: str
    headers: dict[str, str]
    timeout_s: float = 30.0
    retries: int = 4
    backoff_s: float = 1.0
    max_wait_s: float = 60.0
    auth_hint: str = ""
    sleep: Callable[[float], None] = time.sleep
    requests: int = 0  # how many HTTP requests were sent (for reports and tests)

    def get_json(self, url: str, params: dict[str, object] | None = None) -> object:
        return self.get(url, params, json.loads, accept="application/json")

    def get(
        self,
        url: str,
        params: dict[str, object] | None = None,
        parse: Callable[[bytes], object] = bytes,
        accept: str = "*/*",
    ) -> object:
        """The body of a GET, parsed by ``parse`` (refusals, retries and backoff as the class doc says)."""
        full = url + ("?" + urllib.parse.urlencode(params, doseq=True) if params else "")
        shown = url.split("?", 1)[0]
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise ConnectorError(f"{self.name}: {shown} is not an http(s):// URL")
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            self.requests += 1
            headers = {"Accept": accept, **self.headers}
            req = urllib.request.Request(full, headers=headers)  # noqa: S310 -- scheme checked above (http/https only)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310 -- scheme checked above
                    return parse(resp.read())
            except urllib.error.HTTPError as exc:
                body = _body(exc)
                if exc.code in (401, 403):
                    raise ConnectorError(
                        f"{self.name}: {shown} refused the credentials (HTTP {exc.code}); {self.auth_hint}".rstrip("; ")
                    ) from None
                if exc.code in _RETRY_CODES and not last:
                    self.sleep(self._wait(attempt, exc.headers.get("Retry-After")))
                    continue
                raise ConnectorError(f"{self.name}: {shown} answered HTTP {exc.code}: {body}") from None
            except TimeoutError as exc:
                if last:
                    raise ConnectorError(
                        f"{self.name}: {shown} timed out {self.retries + 1} times ({self.timeout_s:g} s each); "
                        "narrow the range or raise timeout_s"
                    ) from exc
                self.sleep(self._wait(attempt, None))
            except (urllib.error.URLError, ConnectionError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                if isinstance(reason, TimeoutError | socket.timeout) and not last:
                    self.sleep(self._wait(attempt, None))
                    continue
                raise ConnectorError(f"{self.name}: cannot reach {shown} ({reason}); check the URL") from None
            except json.JSONDecodeError:
                raise ConnectorError(f"{self.name}: {shown} did not answer JSON") from None
        raise AssertionError("unreachable")  # the last attempt returns or raises

    def _wait(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(float(retry_after), self.max_wait_s)
            except ValueError:
                pass  # an HTTP date: fall back to backoff
        return min(self.backoff_s * 2**attempt, self.max_wait_s)


def _body(exc: urllib.error.HTTPError) -> str:
    """The server's own error text, one line: Prometheus' ``error``, PagerDuty's ``error.message``."""
    try:
        raw = exc.read()
        doc = json.loads(raw)
    except (OSError, ValueError):
        return (str(exc.reason) or "")[:200]
    if isinstance(doc, dict):
        err = doc.get("error")
        if isinstance(err, dict):
            err = err.get("message") or json.dumps(err)[:200]
        return " ".join(str(err or doc)[:300].split())
    return str(doc)[:200]
