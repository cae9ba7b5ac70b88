"""The client under attack and outage: tampering, replays, a real HTTP store going down, threads."""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from policies.errors import BundleVerificationError
from qres_client.bundle import read_bundle_bytes
from qres_client.client import PolicyClient, RollbackRefusedError, StoreUnavailableError, verify_bundle_bytes
from qres_client.signing import SigningKey
from tests.policies.test_client import KEY, decisions_table, publish_policy
from tests.waits import WAIT_S


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StaticServer:
    """A real `python -m http.server` on loopback, serving the store folder."""

    def __init__(self, root: Path) -> None:
        self.root, self.port, self.proc = root, _free_port(), None
        self.log = root.parent / f"http-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StaticServer:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(self.port), "--bind", "127.0.0.1", "--directory", str(self.root)],
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("a"),
        )
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                assert time.monotonic() < deadline, "http.server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def requests(self) -> list[str]:
        return [line.split('"')[1] for line in self.log.read_text().splitlines() if '"GET' in line]


@pytest.fixture
def server(tmp_path):
    store = tmp_path / "store"
    publish_policy(store)
    srv = StaticServer(store).start()
    yield srv
    srv.stop()


def test_http_store_fetches_only_when_latest_changes(server, tmp_path):
    client = PolicyClient(server.url, public_keys=KEY.public, cache_dir=tmp_path / "cache", timeout_s=2)
    assert client.versions == {"shedding": "v000001"} and client.decide(down={"auth"}).scenario == "down=auth"
    before = len(server.requests())
    assert client.refresh() is False
    # Every known family's LATEST is probed (a static server cannot list folders); 404s are skipped.
    probes = [f"GET /{f}/LATEST HTTP/1.1" for f in ("routing", "shedding", "standby")]
    assert server.requests()[before:] == probes
    publish_policy(server.root, decisions_table(version_tag=0.1))
    assert client.refresh() is True and client.versions == {"shedding": "v000002"}
    fetched = server.requests()[before + 3 :]
    assert (
        "GET /shedding/v000002/manifest.json HTTP/1.1" in fetched and len(fetched) == 6
    )  # 3 LATEST, manifest, 2 files
    status = client.status()["shedding"]
    assert status.origin == "store" and status.signed and status.last_error is None and status.stale_s < 60


def test_store_down_keeps_serving_reports_staleness_and_starts_from_cache(server, tmp_path):
    cache = tmp_path / "cache"
    client = PolicyClient(server.url, public_keys=KEY.public, cache_dir=cache, timeout_s=1)
    server.stop()
    with pytest.raises(StoreUnavailableError, match="unreachable"):
        client.refresh()
    assert client.decide(down={"auth"}).version == "v000001"  # still answering
    status = client.status()["shedding"]
    assert "unreachable" in status.last_error and status.stale_s >= 0 and status.version == "v000001"

    # A new process while the store is down: starts from the verified disk cache.
    cold = PolicyClient(server.url, public_keys=KEY.public, cache_dir=cache, timeout_s=1)
    assert cold.versions == {"shedding": "v000001"} and cold.status()["shedding"].origin == "cache"
    assert cold.status()["shedding"].stale_s is None  # never confirmed by the store
    assert cold.decide(down={"pay"}).scenario == "down=pay"
    # Without a cache and without a store: starts empty, decide() explains.
    empty = PolicyClient(server.url, public_keys=KEY.public, timeout_s=1)
    assert empty.versions == {}

    publish_policy(server.root, decisions_table(version_tag=0.1))
    server.start()  # the store comes back
    assert cold.refresh() is True and cold.versions == {"shedding": "v000002"}
    assert cold.status()["shedding"].last_error is None


def test_tampered_disk_cache_is_not_trusted(server, tmp_path):
    cache = tmp_path / "cache"
    PolicyClient(server.url, public_keys=KEY.public, cache_dir=cache)
    server.stop()
    target = cache / "shedding" / "v000001" / "decisions.parquet"
    data = bytearray(target.read_bytes())
    data[len(data) // 3] ^= 0x10
    target.write_bytes(bytes(data))
    cold = PolicyClient(server.url, public_keys=KEY.public, cache_dir=cache, timeout_s=1)
    assert cold.versions == {}  # refused the tampered cache; nothing else to serve while the store is down


def test_replayed_older_version_is_refused_over_http(server):
    client = PolicyClient(server.url, public_keys=KEY.public)
    publish_policy(server.root, decisions_table(version_tag=0.1))
    assert client.refresh() is True
    (server.root / "shedding" / "LATEST").write_text("v000001\n")
    with pytest.raises(RollbackRefusedError):
        client.refresh()
    assert client.versions == {"shedding": "v000002"}


def _flip_one_bit_everywhere(data: bytes, rng: random.Random):
    for pos in range(len(data)):
        flipped = bytearray(data)
        flipped[pos] ^= 1 << rng.randrange(8)
        yield pos, bytes(flipped)


def test_one_flipped_bit_anywhere_in_any_file_is_refused(tmp_path):
    b = publish_policy(tmp_path)
    manifest_bytes, files = read_bundle_bytes(b.path)
    verify_bundle_bytes("shedding", b.version, manifest_bytes, files, public_keys=KEY.public)  # the original is fine
    rng = random.Random(1)
    tried = 0
    for _pos, bad in _flip_one_bit_everywhere(manifest_bytes, rng):
        with pytest.raises(BundleVerificationError):
            verify_bundle_bytes("shedding", b.version, bad, files, public_keys=KEY.public)
        tried += 1
    for name, data in files.items():
        for _pos, bad in _flip_one_bit_everywhere(data, rng):
            with pytest.raises(BundleVerificationError, match=name.replace(".", r"\.")):
                verify_bundle_bytes("shedding", b.version, manifest_bytes, {**files, name: bad}, public_keys=KEY.public)
            tried += 1
    assert tried == len(manifest_bytes) + sum(map(len, files.values()))


def test_swapped_signatures_and_foreign_keys_are_refused(tmp_path):
    from qres_client.bundle import encode_json

    a, b = publish_policy(tmp_path), publish_policy(tmp_path, decisions_table(version_tag=0.1))
    import json

    ma, mb = json.loads((a.path / "manifest.json").read_bytes()), json.loads((b.path / "manifest.json").read_bytes())
    ma["signatures"] = mb["signatures"]
    (a.path / "manifest.json").write_bytes(encode_json(ma))
    (tmp_path / "shedding" / "LATEST").write_text("v000001\n")
    with pytest.raises(BundleVerificationError, match="does not verify"):
        PolicyClient(tmp_path, public_keys=KEY.public)
    (tmp_path / "shedding" / "LATEST").write_text("v000002\n")
    with pytest.raises(BundleVerificationError, match="names key"):
        PolicyClient(tmp_path, public_keys=SigningKey.generate().public)
    assert PolicyClient(tmp_path, public_keys=KEY.public).versions == {"shedding": "v000002"}


def test_concurrent_refresh_and_decide(tmp_path):
    publish_policy(tmp_path)
    client = PolicyClient(tmp_path, public_keys=KEY.public)
    stop = threading.Event()
    problems: list[BaseException] = []
    seen: list[list[str]] = [[] for _ in range(4)]

    def decider(i: int) -> None:
        rng = random.Random(i)
        while not stop.is_set():
            try:
                d = client.decide(down=rng.choice([(), ("auth",), ("api",), ("zzz",), ("q", "r")]))
                seen[i].append(d.version)
            except BaseException as exc:  # noqa: BLE001 - any exception is a failure here
                problems.append(exc)

    def refresher() -> None:
        while not stop.is_set():
            try:
                client.refresh()
            except BaseException as exc:  # noqa: BLE001
                problems.append(exc)

    threads = [threading.Thread(target=decider, args=(i,)) for i in range(4)]
    threads += [threading.Thread(target=refresher) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(8):
        publish_policy(tmp_path, decisions_table(version_tag=0.01 * (i + 1)))
    time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join(30)
    assert problems == []
    assert client.refresh() is False and client.versions == {"shedding": "v000009"}
    for versions in seen:  # each decider only ever moved forward
        assert versions and versions == sorted(versions)
