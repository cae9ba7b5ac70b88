"""``qres-serve``: the decision service, so services in any language can ask over HTTP.

Install ``qresilience-client[serve]`` (starlette, uvicorn, prometheus-client); the rest of
``qres_client`` never imports this module. Endpoints:

- ``GET /v1/decide?policy=shedding&down=a,b&degraded=c`` -> exactly ``qres decide --json``
  (``Decision.as_dict()``); 400 for a bad argument or a refused unknown name, 503 while no
  verified bundle of the policy is loaded. With ``unknown="warn"`` an unknown name is named
  in an ``X-Qres-Warning`` header, the body stays the same.
- ``GET /healthz`` -> 200 only once a verified bundle is loaded (503 before), with versions.
- ``GET /metrics`` -> Prometheus exposition: bundle version and age per family, refresh
  successes and failures, decisions by policy and exact/unmatched, a latency histogram.
- ``GET /openapi.json`` -> the OpenAPI 3.1 document of the above.

A background thread refreshes every ``refresh_s``; the client keeps the last good bundle.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from qres_client.bundle import KNOWN_FAMILIES, version_number
from qres_client.client import PolicyClient
from qres_client.errors import QresError
from qres_client.names import UnknownDependencyError
from qres_client.openapi import OPENAPI

__all__ = ["DecisionService", "create_app", "main"]

_LATENCY_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 0.1, 1.0)


class DecisionService:
    """A PolicyClient that is built (and rebuilt) in the background, and its metrics."""

    def __init__(self, store: str | Path, *, refresh_s: float = 30.0, **client_kwargs) -> None:
        self.store, self.refresh_s, self.client_kwargs = store, refresh_s, client_kwargs
        self.client: PolicyClient | None = None
        self.last_error: str | None = None
        self.registry = CollectorRegistry()
        self.refreshes = Counter("qres_refresh", "Bundle refreshes by result", ["result"], registry=self.registry)
        self.decisions = Counter(
            "qres_decisions", "Decisions answered by policy and match", ["policy", "match"], registry=self.registry
        )
        self.latency = Histogram(
            "qres_decide_latency_seconds",
            "Time to answer /v1/decide, in process",
            ["policy"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_BundleCollector(self))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh_once(self) -> None:
        """Build the client if there is none yet, else refresh it; count the outcome."""
        try:
            if self.client is None:
                self.client = PolicyClient(self.store, **self.client_kwargs)
                errors = [s.last_error for s in self.client.status().values() if s.last_error]
                if errors or not self.client.versions:
                    raise QresError("; ".join(errors) or f"no bundle published in {self.store}")
            else:
                self.client.refresh()
        except QresError as exc:
            self.last_error = str(exc)
            self.refreshes.labels("failure").inc()
        else:
            self.last_error = None
            self.refreshes.labels("success").inc()

    def start(self) -> None:
        self.refresh_once()

        def loop() -> None:
            while not self._stop.wait(self.refresh_s):
                self.refresh_once()

        self._thread = threading.Thread(target=loop, name="qres-serve-refresh", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()


class _BundleCollector:
    """Per family, at scrape time: loaded version number and age of the bundle (created_at)."""

    def __init__(self, service: DecisionService) -> None:
        self.service = service

    def collect(self):
        version = GaugeMetricFamily("qres_bundle_version", "Loaded bundle version number", labels=["policy"])
        age = GaugeMetricFamily(
            "qres_bundle_age_seconds", "Seconds since the loaded bundle was created", labels=["policy"]
        )
        stale = GaugeMetricFamily(
            "qres_bundle_unconfirmed_seconds",
            "Seconds since the store last confirmed the loaded bundle",
            labels=["policy"],
        )
        client = self.service.client
        if client is not None:
            now = time.time()
            for policy, status in client.status().items():
                if status.version is None:
                    continue
                version.add_metric([policy], version_number(status.version) or 0)
                created = client.manifest(policy).get("created_at")
                if isinstance(created, str):
                    age.add_metric([policy], max(0.0, now - _parse_time(created)))
                if status.stale_s is not None:
                    stale.add_metric([policy], status.stale_s)
        yield from (version, age, stale)


def _parse_time(text: str) -> float:
    from datetime import datetime

    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time()


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(x.strip() for x in (text or "").split(",") if x.strip())


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(service: DecisionService, *, start: bool = True) -> Starlette:
    """The ASGI app; ``start`` runs the first refresh and the background loop at start-up."""

    async def decide(request: Request) -> Response:
        q = request.query_params
        policy = q.get("policy", "shedding")
        client = service.client
        if client is None:
            return _error(503, f"no verified bundle loaded yet: {service.last_error}")
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                decision = client.decide(policy, down=_names(q.get("down")), degraded=_names(q.get("degraded")))
        except UnknownDependencyError as exc:
            return _error(400, str(exc))
        except QresError as exc:  # BundleNotLoadedError: that policy has no verified bundle
            return _error(503 if policy in KNOWN_FAMILIES or policy in client.status() else 404, str(exc))
        elapsed = time.perf_counter() - t0
        service.latency.labels(policy).observe(elapsed)
        service.decisions.labels(policy, "exact" if decision.exact else "unmatched").inc()
        headers = {"X-Qres-Warning": str(caught[0].message)[:1000]} if caught else None
        body = json.dumps(decision.as_dict(), separators=(",", ":"), allow_nan=False)
        return Response(body, media_type="application/json", headers=headers)

    async def healthz(request: Request) -> Response:
        client = service.client
        versions = client.versions if client is not None else {}
        ready = bool(versions)
        body = {"ready": ready, "versions": versions, "last_error": service.last_error}
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(service.registry), media_type=CONTENT_TYPE_LATEST)

    async def openapi(request: Request) -> Response:
        return JSONResponse(OPENAPI)

    def lifespan(app):
        from contextlib import asynccontextmanager

        @asynccontextmanager
        async def span(app):
            if start:
                service.start()
            yield
            service.stop()

        return span(app)

    routes = [
        Route("/v1/decide", decide),
        Route("/healthz", healthz),
        Route("/metrics", metrics),
        Route("/openapi.json", openapi),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def main(argv: Sequence[str] | None = None) -> None:
    """``qres-serve STORE --public-key FILE [--host --port --refresh-s ...]``."""
    parser = argparse.ArgumentParser(prog="qres-serve", description="Serve decide() over HTTP.")
    parser.add_argument("store", help="bundle store: a folder or an http(s) URL")
    parser.add_argument("--public-key", default=None, help="qres-signing.pub (default: $QRES_PUBLIC_KEY)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--refresh-s", type=float, default=30.0)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--unmatched", default="greedy")
    parser.add_argument("--unknown", default="warn", choices=("warn", "refuse", "ignore"))
    parser.add_argument("--allow-unsigned", action="store_true")
    args = parser.parse_args(argv)
    run(
        args.store,
        host=args.host,
        port=args.port,
        refresh_s=args.refresh_s,
        public_keys=args.public_key,
        cache_dir=args.cache_dir,
        unmatched=args.unmatched,
        unknown=args.unknown,
        allow_unsigned=args.allow_unsigned,
    )


def run(store: str | Path, *, host: str = "127.0.0.1", port: int = 8080, refresh_s: float = 30.0, **kwargs) -> None:
    """Serve until interrupted (uvicorn, one process)."""
    import uvicorn

    service = DecisionService(store, refresh_s=refresh_s, **kwargs)
    uvicorn.run(create_app(service), host=host, port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
