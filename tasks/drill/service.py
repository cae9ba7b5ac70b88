"""The drilled service: invoice processing that admits through a policy and watches its dependencies.

The worked example of ``qres drill`` and the reference for the contract a team's own staging
service meets (docs/drills.md). Configured by environment variables:

* ``QRES_DRILL_POLICY``: keep-all, tiers, greedy or published (see policies.drill.admission);
* ``QRES_DRILL_DEPS``: JSON ``{role: base URL}`` (the fault proxy's listeners);
* ``QRES_DRILL_ROLES``: JSON ``{role: bundle service id}``; ``QRES_DRILL_WORKLOADS``: JSON list;
* ``QRES_DRILL_STORE``, ``QRES_DRILL_PUBLIC_KEY`` (or empty), ``QRES_DRILL_ALLOW_UNSIGNED``;
* ``QRES_DRILL_EVENTS``: the JSON-lines file its observed-state and decision changes go to;
* ``QRES_DRILL_SLOTS`` (workers), ``QRES_DRILL_MAX_S`` (it exits by itself after this).

Per invoice (``POST /invoice``): admit or shed by the current plan; take a worker slot (none free
within the SLA: failed); validate with the SaaS API, or the local model while it is down; compute
on the pool, or the standby site while it is down; post the payment. ``GET /healthz``: ready.
Health checks probe every dependency's ``/health`` every 0.2 s; two agreeing probes change the
observed state, and the plan is re-decided only then (so decide() is not on the request path).
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from policies.drill.admission import KeepAll, LiveGreedy, Published, StaticTiers, admitted
from policies.drill.load import unit_draw
from policies.drill.observe import Observer, probe_state
from qres_client.bundle import FALLBACK_FILE, TIERS_FILE, read_latest, verify_bundle
from qres_client.client import PolicyClient
from qres_client.greedy import parse_fallback
from tasks.drill.lifetime import LoopbackServer, announce, bounded

PROBE_S, PROBE_TIMEOUT_S, SLOW_S, CALL_TIMEOUT_S = 0.2, 0.5, 0.12, 0.5
LOCAL_ACCURACY = 0.9


def _call(url: str, body: bytes | None = None, timeout: float = CALL_TIMEOUT_S) -> bool:
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")  # noqa: S310 - loopback URLs the orchestrator built
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - same loopback URLs
            resp.read()
            return resp.status == 200
    except (OSError, urllib.error.URLError, ValueError):
        return False


def make_rule(policy: str, workloads: list[str], store: Path, public_key: str | None, allow_unsigned: bool):
    """The admission rule for ``policy`` from the published shedding bundle (verified first)."""
    if policy == "keep-all":
        return KeepAll(workloads)
    if policy == "published":
        client = PolicyClient(store, public_keys=public_key, allow_unsigned=allow_unsigned, policies=["shedding"])
        return Published(workloads, lambda **kw: client.decide("shedding", **kw))
    version = read_latest(store, "shedding")
    path = store / "shedding" / str(version)
    verify_bundle(path)  # sha256 of every file against the manifest
    if policy == "tiers":
        return StaticTiers(workloads, json.loads((path / TIERS_FILE).read_bytes()))
    if policy == "greedy":
        return LiveGreedy(workloads, parse_fallback((path / FALLBACK_FILE).read_bytes(), str(path)))
    raise SystemExit(f"unknown QRES_DRILL_POLICY {policy!r}")


class InvoiceService:
    def __init__(self, rule, deps: dict[str, str], roles: dict[str, str], events: Path, slots: int) -> None:
        self.rule, self.deps, self.roles = rule, deps, roles
        self.observer = Observer([roles[r] for r in deps])
        self.slots = threading.BoundedSemaphore(slots)
        self.lock = threading.Lock()
        self.events = events.open("a", encoding="utf-8")
        self.normal = rule.plan(frozenset(), frozenset())
        self.plan = self.normal
        self._log({"kind": "observed", "down": [], "degraded": []})
        self._log({"kind": "decision", "key": self.normal.key, "admit": self.normal.admit})
        self.stop = threading.Event()

    def _log(self, doc: dict) -> None:
        self.events.write(json.dumps({"t": time.time(), **doc}, sort_keys=True) + "\n")
        self.events.flush()

    def watch(self) -> None:
        """The health-check loop: probes in, observed state and plan out."""
        while not self.stop.wait(PROBE_S):
            changed = False
            for role, base in self.deps.items():
                start = time.monotonic()
                ok = _call(base + "/health", timeout=PROBE_TIMEOUT_S)
                verdict = probe_state(ok, time.monotonic() - start, SLOW_S)
                changed |= self.observer.update(self.roles[role], verdict)
            if changed:
                down, degraded = self.observer.down, self.observer.degraded
                plan = self.rule.plan(down, degraded)
                with self.lock:
                    self._log({"kind": "observed", "down": sorted(down), "degraded": sorted(degraded)})
                    if plan != self.plan:
                        self.plan = plan
                        self._log({"kind": "decision", "key": plan.key, "admit": plan.admit})

    def is_down(self, role: str) -> bool:
        return self.roles[role] in self.observer.down

    def process(self, inv: dict) -> dict:
        plan = self.plan
        iid, wl = inv["invoice_id"], inv["workload_id"]
        out = {"plan": plan.key, "admitted": admitted(plan, iid, wl), "admitted_normal": admitted(self.normal, iid, wl)}
        if not out["admitted"]:
            return {**out, "status": "shed"}
        if not self.slots.acquire(timeout=float(inv["sla_s"])):
            return {**out, "status": "failed", "why": "no worker free within the SLA"}
        try:
            body = json.dumps(inv).encode()
            local = self.is_down("validation") or not _call(self.deps["validation"] + "/validate", body)
            out["misvalidated"] = local and unit_draw("local", iid) >= LOCAL_ACCURACY
            out["validated_by"] = "local" if local else "saas"
            computed = (not self.is_down("compute") and _call(self.deps["compute"] + "/compute", body)) or _call(
                self.deps["standby"] + "/compute", body
            )
            if not computed:
                return {**out, "status": "failed", "why": "compute pool and standby site unavailable"}
            if not _call(self.deps["payment"] + "/pay", body):
                return {**out, "status": "failed", "why": "payment API unavailable"}
            return {**out, "status": "processed"}
        finally:
            self.slots.release()


def make_handler(service: InvoiceService):
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
            except (BrokenPipeError, ConnectionResetError):  # the load generator gave up (its timeout)
                pass

        def do_GET(self) -> None:
            self._send(200 if self.path == "/healthz" else 404, {"plan": service.plan.key})

        def do_POST(self) -> None:
            inv = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            self._send(200, service.process(inv))

        def log_message(self, *args) -> None:
            pass

    return Handler


def main() -> None:
    env = os.environ
    deps, roles = json.loads(env["QRES_DRILL_DEPS"]), json.loads(env["QRES_DRILL_ROLES"])
    workloads = json.loads(env["QRES_DRILL_WORKLOADS"])
    rule = make_rule(
        env["QRES_DRILL_POLICY"],
        workloads,
        Path(env["QRES_DRILL_STORE"]),
        env.get("QRES_DRILL_PUBLIC_KEY") or None,
        env.get("QRES_DRILL_ALLOW_UNSIGNED") == "1",
    )
    service = InvoiceService(rule, deps, roles, Path(env["QRES_DRILL_EVENTS"]), int(env.get("QRES_DRILL_SLOTS", "4")))
    server = LoopbackServer(make_handler(service), int(env.get("QRES_DRILL_PORT", "0")))

    def stop() -> None:
        service.stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    bounded(float(env.get("QRES_DRILL_MAX_S", "300")), stop)
    threading.Thread(target=service.watch, daemon=True).start()
    announce(str(server.server_address[1]))
    server.serve_forever(poll_interval=0.1)
    server.server_close()


if __name__ == "__main__":
    main()
