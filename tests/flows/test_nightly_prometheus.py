"""The nightly pulls from a real Prometheus (its [sources] entry) before ingest, and publishes; a refused pull publishes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.policies.importers import prom_server as ps

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        ps.PROMETHEUS is None or ps.PROMTOOL is None, reason="prometheus not installed (.ci/run installs it)"
    ),
]
MANTICORE = Path(__file__).resolve().parents[2].parent / "shared" / "realdata" / "upptime" / "manticore"


@pytest.mark.skipif(not (MANTICORE / "commits.jsonl").is_file(), reason="shared real data not present")
def test_nightly_pulls_from_prometheus_and_publishes(prefect_harness, tmp_path: Path) -> None:
    from flows.nightly import nightly
    from policies.telemetry.importers.pull import read_watermark
    from policies.telemetry.importers.upptime_git import read_upptime_events
    from qres_client.bundle import read_latest, verify_bundle
    from qres_client.signing import init_keys
    from tasks.support.preflight import OutageError

    events = read_upptime_events(MANTICORE / "commits.jsonl")
    ps.write_openmetrics(tmp_path / "h.om", ps.site_series(events, 300), 0, float("inf"), step_s=300)
    ps.create_blocks(tmp_path / "h.om", tmp_path / "tsdb")
    init_keys(tmp_path / "state" / "keys")
    landing, cfg = tmp_path / "landing", tmp_path / "qres.toml"
    body = (
        f'data_dir = "{landing}"\nstore_dir = "bundles"\nstate_dir = "state"\nseed = 3\n'
        "[solve]\ntime_limit_s = 0.5\nanneal_num_reads = 4\nanneal_num_sweeps = 100\n[scenarios]\nsample_max = 0\n"
        '[sources.blackbox]\nkind = "prometheus"\nurl = "URL"\nsince = "2026-08-11T00:00:00Z"\nstep_s = 300\n'
    )
    with ps.prometheus(tmp_path / "tsdb", tmp_path) as url:
        cfg.write_text(body.replace("URL", url))
        summary = nightly(config=str(cfg))
        assert summary["published"] and summary["dependencies_with_outages"] > 0
        assert read_latest(tmp_path / "bundles", "shedding") == summary["bundle_version"]
        manifest = verify_bundle(Path(summary["bundle_path"]))
        assert manifest["inputs"]["sha256"]["health_checks"]
        mark = read_watermark(landing, "blackbox")
        assert mark is not None and mark > max(t for t, _, _ in events)  # pulled up to now
        watermark = (landing / "_pull" / "blackbox.json").read_bytes()
        # A second source whose server is unreachable (the first still up): the nightly refuses
        # in its preflight, before any work (blackbox is not pulled again), and publishes nothing
        cfg.write_text(
            cfg.read_text()
            + f'[sources.gone]\nkind = "prometheus"\nurl = "http://127.0.0.1:{ps.free_port()}"\nsince = "1h"\n'
        )
        with pytest.raises(
            OutageError, match=r"^telemetry source gone \(prometheus\) at http://127.0.0.1:\d+ is unreachable"
        ):
            nightly(config=str(cfg))
    assert read_latest(tmp_path / "bundles", "shedding") == summary["bundle_version"]
    assert (landing / "_pull" / "blackbox.json").read_bytes() == watermark
    assert not (landing / "_pull" / "gone.json").exists()
