"""A telemetry source or the bundle store down: one line, exit 1, nothing published, inputs untouched.

The at-start cases run ``qres run`` as a process (they fail in the preflight, before Prefect
starts, so each takes seconds). The mid-run case is the one full nightly here, in process: a
hook inside the publish lock takes the store away (its folder replaced by a file, as when a
volume is unmounted) before the first bundle is written, deterministically.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from policies.bundle.store import publish_bundle
from qres_client.bundle import list_versions, read_latest
from tasks.support.preflight import OutageError, check_sources
from tests.faults.test_outages import BIN, _error_line, _free_port, _tree

pytestmark = pytest.mark.e2e


@contextmanager
def _answering(status: int, seen: list[dict]) -> Iterator[str]:
    """A loopback HTTP server answering every GET with ``status`` and a Prometheus-like body."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append({"path": self.path, "auth": self.headers.get("Authorization")})
            body = json.dumps({"status": "success" if status == 200 else "error"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)


def test_the_source_preflight_asks_once_with_credentials_and_names_a_refusal(monkeypatch) -> None:
    monkeypatch.setenv("PROMETHEUS_TOKEN", "tok-s3cret")
    seen: list[dict] = []
    with _answering(200, seen) as url:
        check_sources({"blackbox": {"kind": "prometheus", "url": url + "/prom", "retries": 3}})
    assert seen == [{"path": "/prom/api/v1/query?query=1", "auth": "Bearer tok-s3cret"}]  # one try, the pull's token
    with _answering(401, seen) as url, pytest.raises(OutageError) as err:
        check_sources({"blackbox": {"kind": "prometheus", "url": url.replace("//", "//ops:pw-s3cret@")}})
    text = str(err.value)
    assert text.startswith(f"telemetry source blackbox (prometheus) at {url} refused the credentials (HTTP 401"), text
    assert "s3cret" not in text and "ops" not in text and "\n" not in text


def test_every_pulled_kind_is_checked_before_any_work(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PAGERDUTY_TOKEN", "pd-s3cret")
    seen: list[dict] = []
    with _answering(401, seen) as url, pytest.raises(OutageError) as err:
        check_sources({"oncall": {"kind": "pagerduty", "url": url}})
    assert seen[0]["path"] == "/incidents?limit=1"
    assert "refused the credentials (HTTP 401; set $PAGERDUTY_TOKEN)" in str(err.value)
    assert "pd-s3cret" not in str(err.value)
    port = _free_port()
    with pytest.raises(
        OutageError, match=r"^telemetry source catalog \(backstage\) at http://127\.0\.0\.1:\d+ is unreachable"
    ):
        check_sources({"catalog": {"kind": "backstage", "url": f"http://127.0.0.1:{port}"}})
    missing = tmp_path / "status-repo"
    with pytest.raises(OutageError, match=r"telemetry source site \(upptime\) at .*status-repo does not exist"):
        check_sources({"site": {"kind": "upptime", "path": str(missing)}})
    missing.mkdir()
    check_sources({"site": {"kind": "upptime", "path": str(missing)}})  # there: the pull reads (and judges) it


def _qres_run(cfg: Path, cwd: Path, **env: str) -> tuple[int, str, float]:
    started = time.monotonic()
    done = subprocess.run(
        [BIN / "qres", "run", "-c", str(cfg), "--quiet"],
        cwd=cwd,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "COLUMNS": "400", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    return done.returncode, done.stdout, time.monotonic() - started


def test_a_pull_source_down_at_start_fails_before_any_work(small_sample: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"  # the pull's landing folder: it must stay as it was
    shutil.copytree(small_sample, data)
    port = _free_port()  # a closed loopback port
    cfg = tmp_path / "qres.toml"
    cfg.write_text(
        f'data_dir = "{data}"\nstore_dir = "bundles"\nstate_dir = "state"\n'
        f'[sources.blackbox]\nkind = "prometheus"\nurl = "http://scraper:hunter2@127.0.0.1:{port}/prom"\n'
        'since = "1h"\n'
    )
    before = _tree(data)
    code, out, took = _qres_run(cfg, tmp_path, PROMETHEUS_TOKEN="tok-s3cret")
    assert code == 1, out[-3000:]
    line = _error_line(out)
    assert line.startswith(f"error: telemetry source blackbox (prometheus) at http://127.0.0.1:{port}/prom"), line
    assert "is unreachable (" in line and "refused" in line.lower() and "nothing was published" in line, line
    assert "hunter2" not in out and "scraper" not in out and "tok-s3cret" not in out
    assert took < 60, f"took {took:.1f} s to fail"
    assert _tree(data) == before  # no watermark, no landed file
    assert not (tmp_path / "bundles").exists() and not (tmp_path / "state" / "validation").exists()


def _seeded_store(volume: Path) -> Path:
    """A store holding one published version (a stand-in bundle: only LATEST and the versions are compared)."""
    store = volume / "bundles"
    publish_bundle(store, "shedding", {"policy.json": b"{}"}, {"run_id": "before"})
    return store


@pytest.mark.parametrize("how", ["volume-gone", "not-a-folder"])
def test_the_bundle_store_down_at_start_fails_in_one_line(small_sample: Path, tmp_path: Path, how: str) -> None:
    store = _seeded_store(tmp_path / "volume")
    link = tmp_path / "bundles"
    cfg = tmp_path / "qres.toml"
    cfg.write_text(f'data_dir = "{small_sample}"\nstore_dir = "{link}"\nstate_dir = "state"\n')
    if how == "volume-gone":  # the configured path resolves into a volume that is not there
        link.symlink_to(store)
        (tmp_path / "volume").rename(tmp_path / "unmounted")
        reason = f"its parent folder {store.parent} does not exist: a volume that is not mounted?"
        link = store  # the store the settings resolved
    else:
        link.write_bytes(b"")
        reason = "not a folder"
    inputs = _tree(small_sample)
    code, out, took = _qres_run(cfg, tmp_path)
    assert code == 1, out[-3000:]
    line = _error_line(out)
    assert line == f"error: bundle store {link} is not writable ({reason}); nothing was published; LATEST is unchanged"
    assert took < 60, f"took {took:.1f} s to fail"
    if how == "volume-gone":
        assert not (tmp_path / "volume").exists()  # no empty store made in its place
        (tmp_path / "unmounted").rename(tmp_path / "volume")
    assert (read_latest(store, "shedding"), list_versions(store, "shedding")) == ("v000001", ["v000001"])
    assert _tree(small_sample) == inputs


def test_the_bundle_store_lost_mid_run_fails_in_one_line(
    prefect_harness, small_sample: Path, tmp_path: Path, monkeypatch
) -> None:
    import flows.nightly
    from flows.nightly import nightly
    from qres_client.signing import init_keys

    data = tmp_path / "data"
    shutil.copytree(small_sample, data)
    store = _seeded_store(tmp_path)
    init_keys(tmp_path / "state" / "keys")
    cfg = tmp_path / "qres.toml"
    cfg.write_text(
        f'data_dir = "{data}"\nstore_dir = "{store}"\nstate_dir = "{tmp_path / "state"}"\nseed = 5\n'
        "[solve]\ntime_limit_s = 1.0\nanneal_num_reads = 4\nanneal_num_sweeps = 100\n"
        "[scenarios]\nsample_max = 0\n[backtest]\nenabled = false\n"
    )
    real_lock, lost = flows.nightly.publish_lock, []

    @contextmanager
    def lock_then_lose_the_store(path, **kwargs):
        with real_lock(path, **kwargs):
            (tmp_path / "bundles").rename(tmp_path / "unmounted")  # the volume goes away ...
            (tmp_path / "bundles").write_bytes(b"")  # ... and its mount point is no folder now
            lost.append(path)
            yield

    monkeypatch.setattr(flows.nightly, "publish_lock", lock_then_lose_the_store)
    inputs = _tree(data)
    with pytest.raises(OutageError) as err:
        nightly(config=str(cfg))
    assert lost == [store]  # the hook ran: solving was done, publishing had begun
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"bundle store {store} failed during the run (NotADirectoryError"), text
    assert text.endswith("LATEST could not be read back: check it with `qres versions`"), text
    (tmp_path / "bundles").unlink()
    (tmp_path / "unmounted").rename(tmp_path / "bundles")  # back: nothing of this run reached it
    assert (read_latest(store, "shedding"), list_versions(store, "shedding")) == ("v000001", ["v000001"])
    assert _tree(data) == inputs
