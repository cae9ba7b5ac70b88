"""Fail fast: is the tracking store reachable and the bundle store writable, before any work?

A run that cannot record or publish should say so in seconds, not after solving and a
quarter of an hour of retries. Both checks are cheap (one HTTP GET with a short timeout, one
temp file) and raise :class:`OutageError`, whose message is one line naming what is down
and that nothing was published.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from policies.errors import QresError

__all__ = [
    "OutageError",
    "tracking_outage",
    "check_tracking_store",
    "check_bundle_store",
    "MLFLOW_RETRY_BUDGET",
    "NOTHING_PUBLISHED",
]

NOTHING_PUBLISHED = "nothing was published; LATEST is unchanged"

# The one retry level of MLflow calls: MLflow's own HTTP retries (the Prefect tasks that call
# MLflow do not retry). Worst case per call with a hanging server: 3 x 10 s + 1 s + 2 s of
# backoff = 33 s; with a refused connection about 3 s.
MLFLOW_RETRY_BUDGET = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}


class OutageError(QresError):
    """A store the run needs is down: the run stops before (or instead of) publishing."""


def check_tracking_store(uri: str, *, timeout_s: float = 5.0) -> None:
    """An HTTP(S) tracking server must answer ``/health``; a local (sqlite/file) store's folder must be writable."""
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        import urllib.error  # here: urllib.request (http.client, ssl, email) is most of a `qres --help`'s stdlib imports
        import urllib.request

        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s) as resp:  # noqa: S310 - http(s) only, checked above
                if resp.status == 200:
                    return
                reason = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            reason = f"HTTP {exc.code}"
        except (OSError, ValueError) as exc:
            reason = str(getattr(exc, "reason", exc))
        raise OutageError(f"tracking store {uri} is unreachable ({reason}); {NOTHING_PUBLISHED}")
    if parsed.scheme in ("sqlite", "file", ""):
        path = Path(parsed.path if parsed.scheme else uri)
        folder = path.parent if parsed.scheme == "sqlite" else path
        _writable(folder, f"tracking store {uri}")


def check_bundle_store(store_dir: Path) -> None:
    """The bundle store must be a folder this process can create files in."""
    _writable(Path(store_dir), f"bundle store {store_dir}")


def _writable(folder: Path, what: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".qres-preflight-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise OutageError(f"{what} is not writable ({exc.strerror or exc}); {NOTHING_PUBLISHED}") from None


def tracking_outage(exc: BaseException, uri: str, *, published: bool) -> OutageError | None:
    """One readable error when ``exc`` (or what caused it) is the tracking server failing, else None."""
    import requests
    from mlflow.exceptions import MlflowException

    seen = exc
    while seen is not None:
        down = isinstance(seen, (requests.exceptions.RequestException, ConnectionError)) or (
            isinstance(seen, MlflowException) and ("API request" in str(seen) or "Max retries" in str(seen))
        )
        if down:
            detail = str(seen).splitlines()[0][:160] if str(seen) else type(seen).__name__
            after = (
                "the bundles were published (LATEST moved) but the run's final record is incomplete"
                if published
                else NOTHING_PUBLISHED
            )
            return OutageError(f"tracking store {uri} failed during the run ({detail}); {after}")
        seen = seen.__cause__ or seen.__context__
    return None
