"""Retention, and a publisher killed (SIGKILL) at many points while readers keep loading."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from policies.bundle.store import prune_versions, publish_bundle, set_latest
from qres_client.bundle import list_versions, read_latest
from qres_client.client import PolicyClient
from tests.policies.test_client import KEY, decisions_table, publish_policy
from tests.waits import WAIT_S

REPO = Path(__file__).resolve().parents[2]


def test_retention_keeps_the_newest_and_never_latest_or_protected(tmp_path):
    for i in range(6):
        publish_policy(tmp_path, decisions_table(version_tag=0.01 * i))
    set_latest(tmp_path, "shedding", "v000002", rollback=True)  # e.g. the champion is an older version
    removed = prune_versions(tmp_path, "shedding", keep=2, protect=("v000003",))
    assert removed == ["v000001", "v000004"]
    assert list_versions(tmp_path, "shedding") == ["v000002", "v000003", "v000005", "v000006"]
    assert publish_policy(tmp_path).version == "v000007"  # numbers are never reused
    with pytest.raises(ValueError, match="keep"):
        prune_versions(tmp_path, "shedding", keep=0)


def test_publish_with_keep_prunes_after_latest_moves(tmp_path):
    for i in range(4):
        publish_bundle(tmp_path, "shedding", {"policy.json": b"{}\n"}, {"i": i}, keep=2)
    assert list_versions(tmp_path, "shedding") == ["v000003", "v000004"]
    assert read_latest(tmp_path, "shedding") == "v000004"
    assert not list(tmp_path.glob("shedding/.tmp-*"))


_PUBLISHER = """
import sys
from pathlib import Path
from policies.bundle.store import publish_bundle
from qres_client.signing import SigningKey
src = Path(sys.argv[2])
key = SigningKey.from_json((src / "key.json").read_text(), "key")
files = {n: (src / n).read_bytes() for n in ("decisions.parquet", "policy.json")}
for i in range(1000):
    publish_bundle(sys.argv[1], "shedding", files, {"i": i}, signer=key.sign)
"""


def test_sigkilled_publisher_never_exposes_a_partial_bundle(tmp_path):
    """Kill the publisher at 25 random moments; after each, and while it runs, readers load only whole bundles."""
    first = publish_policy(tmp_path / "store")
    src = tmp_path / "src"
    src.mkdir()
    (src / "key.json").write_text(KEY.to_json())
    for name in ("decisions.parquet", "policy.json"):
        (src / name).write_bytes((first.path / name).read_bytes())
    store = tmp_path / "store"
    reader = PolicyClient(store, public_keys=KEY.public)
    rng = random.Random(5)
    loads = 0
    for _ in range(25):
        before = len(list_versions(store, "shedding"))
        child = subprocess.Popen([sys.executable, "-c", _PUBLISHER, str(store), str(src)], cwd=REPO)
        # Kill once the child is publishing (a temp folder or a new version: not during interpreter
        # start), then after a random extra moment, so kills land at every step of a publish on a
        # quiet or a busy machine alike.
        deadline = time.monotonic() + WAIT_S
        while not (list(store.glob("shedding/.tmp-*")) or len(list_versions(store, "shedding")) > before):
            assert child.poll() is None and time.monotonic() < deadline, "the publisher never started"
            reader.refresh()  # raises on any partial or unverifiable bundle
            loads += 1
        extra = time.monotonic() + rng.uniform(0.0, 0.3)
        while True:  # at least one read while the publisher is mid-publish
            reader.refresh()
            loads += 1
            if time.monotonic() >= extra:
                break
        child.send_signal(signal.SIGKILL)
        child.wait()
        fresh = PolicyClient(store, public_keys=KEY.public)  # a new reader after the crash
        assert fresh.versions["shedding"] == read_latest(store, "shedding")
        assert reader.refresh() in (True, False)
    assert loads >= 25
    versions = list_versions(store, "shedding")
    assert len(versions) > 1, "the publisher should have completed versions between kills"
    assert publish_policy(store).version > versions[-1]  # the next publisher takes over and cleans up
    assert not list(store.glob("shedding/.tmp-*"))
