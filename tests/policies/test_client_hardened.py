"""The client against a hostile store: fuzzed metadata, slow streams, oversized bundles, typos.

A real HTTP server on 127.0.0.1 (a thread) serves whatever each test puts in ``routes``.
"""

from __future__ import annotations

import json
import random
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from policies.errors import BundleVerificationError
from qres_client.client import Limits, PolicyClient, StoreUnavailableError
from qres_client.fetch import RefreshDeadlineError
from qres_client.names import UnknownDependencyError, UnknownDependencyWarning
from tests.policies.test_client import KEY, decisions_table, publish_policy


class Slow:
    """A body sent one byte every ``gap_s`` seconds."""

    def __init__(self, data: bytes, gap_s: float) -> None:
        self.data, self.gap_s = data, gap_s


class Store:
    """A loopback HTTP store: ``routes`` maps a path to bytes or a :class:`Slow` body."""

    def __init__(self) -> None:
        self.routes: dict[str, bytes | Slow] = {}
        self.requests: list[str] = []
        self.stop = threading.Event()
        store = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                store.requests.append(self.path)
                body = store.routes.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                if isinstance(body, Slow):
                    self.end_headers()
                    for b in body.data:
                        if store.stop.wait(body.gap_s):
                            return
                        try:
                            self.wfile.write(bytes([b]))
                            self.wfile.flush()
                        except OSError:
                            return
                    return
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def load(self, folder: Path) -> None:
        for p in folder.rglob("*"):
            if p.is_file() and not p.name.startswith("."):
                self.routes["/" + p.relative_to(folder).as_posix()] = p.read_bytes()

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def http_store(tmp_path):
    folder = tmp_path / "store"
    publish_policy(folder)
    store = Store()
    store.load(folder)
    store.folder = folder
    yield store
    store.close()


def _manifest(store: Store) -> dict:
    return json.loads(store.routes["/shedding/v000001/manifest.json"])


def _fuzz_cases(store: Store, rng: random.Random) -> list[tuple[str, dict[str, bytes]]]:
    """(name, routes to add) for v000002 variants that must all be refused."""
    good = store.routes["/shedding/v000001/manifest.json"]
    files = {n: store.routes[f"/shedding/v000001/{n}"] for n in _manifest(store)["files"]}
    latest2 = {"/shedding/LATEST": b"v000002\n"}

    def bundle(manifest: bytes, **over: bytes) -> dict[str, bytes]:
        out = {**latest2, "/shedding/v000002/manifest.json": manifest}
        out.update({f"/shedding/v000002/{n}": over.get(n.replace(".", "_"), b) for n, b in files.items()})
        return out

    m = _manifest(store)
    cases = [
        ("latest 'v'+5000 digits", {"/shedding/LATEST": b"v" + b"9" * 5000 + b"\n"}),
        ("latest random bytes", {"/shedding/LATEST": rng.randbytes(40)}),
        ("latest huge", {"/shedding/LATEST": b"v000002\n" * 100_000}),
        ("manifest deep nesting", bundle(b"[" * 200_000 + b"]" * 200_000)),
        ("manifest deep objects", bundle(b'{"a":' * 100_000 + b"1" + b"}" * 100_000)),
        ("manifest NaN", bundle(json.dumps({**m, "schema_version": float("nan")}).encode())),
        ("manifest NaN size", bundle(good.replace(b'"bytes":', b'"bytes":NaN,"x":', 1))),
        ("manifest huge int", bundle(good.replace(b'"schema_version":1', b'"schema_version":' + b"9" * 5000))),
        ("manifest huge float", bundle(good.replace(b'"schema_version":1', b'"schema_version":1e999999'))),
        ("manifest negative size", bundle(good.replace(b'"bytes":', b'"bytes":-', 1))),
        ("manifest not utf-8", bundle(b"\xff\xfe" + good)),
        ("manifest is a list", bundle(b"[1,2,3]")),
        ("manifest empty", bundle(b"")),
        ("manifest missing", {**latest2}),
        ("parquet truncated", bundle(good, decisions_parquet=files["decisions.parquet"][:100])),
        ("parquet random", bundle(good, decisions_parquet=rng.randbytes(len(files["decisions.parquet"])))),
    ]
    for i in range(12):  # random truncations and random byte flips of the real manifest
        cut = rng.randrange(len(good))
        cases.append((f"manifest truncated at {cut}", bundle(good[:cut])))
        flipped = bytearray(good)
        flipped[rng.randrange(len(good))] = rng.randrange(256)
        cases.append((f"manifest flipped byte #{i}", bundle(bytes(flipped))))
        cases.append((f"manifest random bytes #{i}", bundle(rng.randbytes(rng.randrange(1, 4000)))))
    return cases


def test_fuzzed_store_never_kills_refresh_and_keeps_the_last_good_bundle(http_store):
    client = PolicyClient(http_store.url, public_keys=KEY.public, timeout_s=2)
    assert client.versions == {"shedding": "v000001"}
    base = dict(http_store.routes)
    cases = _fuzz_cases(http_store, random.Random(17))
    assert len(cases) >= 50
    for name, routes in cases:
        http_store.routes = {**base, **routes}
        with pytest.raises((BundleVerificationError, StoreUnavailableError)):
            client.refresh()
        assert client.versions == {"shedding": "v000001"}, name
        assert client.decide(down={"auth"}).scenario == "down=auth", name
        assert client.status()["shedding"].last_error, name

    # The auto-refresh loop survives a run of bad bundles and then picks up a good one.
    thread = client.start_auto_refresh(interval_s=0.01)
    try:
        for _, routes in cases[:10]:
            http_store.routes = {**base, **routes}
            seen = len(http_store.requests)
            deadline = time.monotonic() + 30
            while len(http_store.requests) < seen + 3:  # at least one more refresh ran
                assert time.monotonic() < deadline and thread.is_alive()
                time.sleep(0.01)
        assert thread.is_alive() and client.versions == {"shedding": "v000001"}
        publish_policy(http_store.folder, decisions_table(version_tag=0.1))
        http_store.load(http_store.folder)
        deadline = time.monotonic() + 30
        while client.versions != {"shedding": "v000002"}:
            assert time.monotonic() < deadline, client.status()
            time.sleep(0.01)
        assert client.status()["shedding"].last_error is None
    finally:
        client.close()


def test_slow_store_is_abandoned_at_the_refresh_deadline(http_store):
    manifest = http_store.routes["/shedding/v000001/manifest.json"]
    http_store.routes["/shedding/v000001/manifest.json"] = Slow(manifest, gap_s=0.3)
    start = time.monotonic()
    client = PolicyClient(http_store.url, public_keys=KEY.public, timeout_s=2, limits=Limits(deadline_s=1.5))
    took = time.monotonic() - start
    assert took < 1.5 + 2 + 3  # deadline + one socket timeout + slack; the whole manifest would take ~minutes
    assert client.versions == {}
    assert "deadline" in client.status()["shedding"].last_error
    assert issubclass(RefreshDeadlineError, StoreUnavailableError)
    with pytest.raises(StoreUnavailableError, match="refresh deadline of 1.5 s passed"):  # RefreshDeadlineError(s)
        client.refresh()


def test_caps_are_checked_from_the_manifest_before_downloading(http_store):
    m = _manifest(http_store)
    many = {**m, "files": {f"f{i:03d}.bin": {"sha256": "0" * 64, "bytes": 1 << 20} for i in range(200)}}
    http_store.routes["/shedding/v000001/manifest.json"] = json.dumps(many).encode()
    with pytest.raises(BundleVerificationError, match="lists 200 files, more than max_files=32"):
        PolicyClient(http_store.url, public_keys=KEY.public, timeout_s=2)
    assert not any("/f0" in r for r in http_store.requests)  # nothing downloaded

    http_store.routes["/shedding/v000001/manifest.json"] = json.dumps(
        {**m, "files": {n: {**e, "bytes": 400 << 20} for n, e in m["files"].items()}}
    ).encode()
    with pytest.raises(BundleVerificationError, match="more than max_total_bytes"):
        PolicyClient(http_store.url, public_keys=KEY.public, timeout_s=2)
    assert not any("decisions.parquet" in r for r in http_store.requests)


def test_a_file_longer_than_declared_is_cut_off_while_reading(http_store):
    path = "/shedding/v000001/decisions.parquet"
    http_store.routes[path] = Slow(http_store.routes[path] + b"x" * 5, gap_s=0)  # no Content-Length
    with pytest.raises(BundleVerificationError, match="more than the .* bytes allowed"):
        PolicyClient(http_store.url, public_keys=KEY.public, timeout_s=2)


def test_folder_store_caps_too(tmp_path):
    publish_policy(tmp_path)
    with pytest.raises(BundleVerificationError, match="max_total_bytes=100"):
        PolicyClient(tmp_path, public_keys=KEY.public, limits=Limits(max_total_bytes=100))
    with pytest.raises(BundleVerificationError, match="max_files=1"):
        PolicyClient(tmp_path, public_keys=KEY.public, limits=Limits(max_files=1))


def test_http_source_discovers_every_published_family(http_store):
    publish_policy(http_store.folder, policy="standby")
    http_store.load(http_store.folder)
    client = PolicyClient(http_store.url, public_keys=KEY.public, timeout_s=2)
    assert client.versions == {"shedding": "v000001", "standby": "v000001"}
    assert client.decide("standby", down={"auth"}).scenario == "down=auth"


def test_unknown_dependency_names_warn_refuse_or_pass(tmp_path):
    publish_policy(tmp_path)
    client = PolicyClient(tmp_path, public_keys=KEY.public)
    with pytest.warns(UnknownDependencyWarning, match=r"'auht' \(closest known: auth\)"):
        d = client.decide(down={"auht"})
    assert not d.exact
    strict = PolicyClient(tmp_path, public_keys=KEY.public, unknown="refuse")
    with pytest.raises(UnknownDependencyError, match=r"'pays' \(closest known: pay\)"):
        strict.decide(down={"pays", "auth"})
    assert strict.decide(down={"auth"}).exact  # known names pass
    quiet = PolicyClient(tmp_path, public_keys=KEY.public, unknown="ignore")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert quiet.decide(down={"auht"}).scenario == d.scenario
    with pytest.raises(ValueError, match="unknown must be one of warn, refuse, ignore"):
        PolicyClient(tmp_path, public_keys=KEY.public, unknown="maybe")
