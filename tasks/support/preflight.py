"""Fail fast: are the tracking store and every pull source reachable, the bundle store writable?

A run that cannot pull, record or publish should say so in seconds, not after solving and a
quarter of an hour of retries. Every check is cheap (one HTTP GET with a short timeout and no
retry, or one temp file) and raises :class:`OutageError`, whose message is one line naming
what is down and that nothing was published.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlsplit

from policies.errors import QresError

__all__ = [
    "OutageError",
    "tracking_outage",
    "store_outage",
    "check_tracking_store",
    "check_bundle_store",
    "check_sources",
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


def check_sources(sources: dict[str, dict[str, Any]], *, timeout_s: float = 5.0) -> None:
    """Every ``[sources.*]`` entry the nightly pulls must be there before any work.

    An HTTP source answers one trivial request with its credentials (one attempt: the pull
    itself retries; this only tells a dead or misconfigured source from a slow one); a local
    one must exist. The URL in the message has no user, password or query.
    """
    from policies.telemetry.importers.spec import parse_sources

    for name, entry in parse_sources(sources).items():
        url, headers, hint = _probe_target(entry.kind, entry.spec)
        if url is None:
            continue  # an object store (s3://, gs://): reached through pyarrow's own filesystem at pull time
        if not url.startswith(("http://", "https://")):
            if not Path(url).exists():
                raise OutageError(
                    f"telemetry source {name} ({entry.kind}) at {url} does not exist; {NOTHING_PUBLISHED}"
                )
            continue
        reason = _probe(url, headers, hint, timeout_s, head=entry.kind in ("url", "statuspage", "gcp", "aws"))
        if reason:
            shown = _public_url(getattr(entry.spec, "url", "") or url)  # the URL as configured, not the probe's
            raise OutageError(f"telemetry source {name} ({entry.kind}) at {shown} {reason}; {NOTHING_PUBLISHED}")


def _probe_target(kind: str, spec: Any) -> tuple[str | None, dict[str, str], str]:
    """What to check for one source: (URL or local path, request headers, credentials hint)."""
    from policies.telemetry.importers.http import auth_headers

    if kind == "prometheus":
        hint = f"set ${spec.token_env} or ${spec.username_env}"
        return spec.url.rstrip("/") + "/api/v1/query?query=1", dict(spec.client().headers), hint
    if kind == "pagerduty":
        if spec.export:
            return spec.export, {}, ""
        token = os.environ.get(spec.token_env, "")
        headers = {"Authorization": f"Token token={token}", "Accept": "application/vnd.pagerduty+json;version=2"}
        return spec.url.rstrip("/") + "/incidents?limit=1", headers, f"set ${spec.token_env}"
    if kind == "backstage":
        if not spec.url:
            return (spec.files[0] if spec.files else None), {}, ""
        headers = auth_headers(spec.token_env, None, None)
        return spec.url.rstrip("/") + "/api/catalog/entities?limit=1", headers, f"set ${spec.token_env}"
    where = getattr(spec, "url", None) or getattr(spec, "path", None)
    if where is None or "://" in where and not where.startswith(("http://", "https://")):
        return None, {}, ""
    return where, {}, "check the URL's access"


def _probe(url: str, headers: dict[str, str], hint: str, timeout_s: float, *, head: bool = False) -> str | None:
    """None when the server answered 200, else what failed (a phrase that follows the URL)."""
    if urlsplit(url).scheme not in ("http", "https"):
        return "is not an http(s):// URL"
    import urllib.error  # here, as in check_tracking_store: kept off every command's start-up
    import urllib.request

    headers = {"Accept": "application/json", **headers}
    # HEAD for a file to download (an archive, an export): reachability without the body
    req = urllib.request.Request(_no_userinfo(url), headers=headers, method="HEAD" if head else "GET")  # noqa: S310 - http(s) only, checked above
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 - as above
            return None if resp.status == 200 else f"answered HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            return f"refused the credentials (HTTP {exc.code}; {hint})"
        if head and exc.code == 405:
            return None  # a server that serves files but not HEAD is up; the pull's GET will tell the rest
        return f"answered HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return f"is unreachable ({getattr(exc, 'reason', None) or exc})"


def _no_userinfo(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def _public_url(url: str) -> str:
    """``url`` without credentials, query or fragment (safe for a log line)."""
    parts = urlsplit(_no_userinfo(url))
    return parts._replace(query="", fragment="").geturl()


def check_bundle_store(store_dir: Path) -> None:
    """The bundle store must be a folder this process can create files in.

    A first run creates the store folder, but never its parent: a missing parent is a volume
    that is not mounted, and a new empty store there would restart the versions at v000001.
    """
    store = Path(store_dir)
    if not store.exists() and not store.is_symlink() and not store.parent.is_dir():
        raise OutageError(
            f"bundle store {store_dir} is not writable (its parent folder {store.parent} does not exist: "
            f"a volume that is not mounted?); {NOTHING_PUBLISHED}"
        )
    _writable(store, f"bundle store {store_dir}")


def _writable(folder: Path, what: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".qres-preflight-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if folder.is_symlink() and not folder.exists():  # e.g. a volume that is not mounted
            reason = f"a link to {os.readlink(folder)}, which does not exist"
        elif folder.exists() and not folder.is_dir():
            reason = "not a folder"
        raise OutageError(f"{what} is not writable ({reason}); {NOTHING_PUBLISHED}") from None


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


def store_outage(exc: BaseException, store_dir: Path, *, moved: list[str] | None) -> OutageError | None:
    """One readable error when ``exc`` (or what caused it) is a file error under the bundle store, else None.

    ``moved``: the families whose LATEST differs from the run's start (None: LATEST unreadable).
    """
    store = os.path.abspath(store_dir)
    seen = exc
    while seen is not None:
        names = [getattr(seen, "filename", None), getattr(seen, "filename2", None)] if isinstance(seen, OSError) else []
        if any(n is not None and _under(os.fsdecode(n), store) for n in names):
            detail = f"{type(seen).__name__}: {seen.strerror or seen}"
            if moved is None:
                after = "LATEST could not be read back: check it with `qres versions`"
            elif moved:
                after = f"LATEST moved for {', '.join(moved)} before the failure"
            else:
                after = NOTHING_PUBLISHED
            return OutageError(f"bundle store {store_dir} failed during the run ({detail}); {after}")
        seen = seen.__cause__ or seen.__context__
    return None


def _under(path: str, folder: str) -> bool:
    path = os.path.abspath(path)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)
