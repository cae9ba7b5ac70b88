"""The nightly pulls an Upptime [sources] entry (the real manticore history) before ingest and publishes; a refused source publishes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
MANTICORE = Path(__file__).resolve().parents[2].parent / "shared" / "realdata" / "upptime" / "manticore"


@pytest.mark.skipif(not (MANTICORE / "commits.jsonl").is_file(), reason="shared real data not present")
def test_nightly_pulls_an_upptime_source_and_publishes(prefect_harness, tmp_path: Path) -> None:
    from flows.nightly import nightly
    from qres_client.bundle import read_latest, verify_bundle
    from qres_client.signing import init_keys

    init_keys(tmp_path / "state" / "keys")
    landing, cfg = tmp_path / "landing", tmp_path / "qres.toml"
    cfg.write_text(
        'data_dir = "landing"\nstore_dir = "bundles"\nstate_dir = "state"\nseed = 3\n'
        "[solve]\ntime_limit_s = 0.5\nanneal_num_reads = 4\nanneal_num_sweeps = 100\n[scenarios]\nsample_max = 0\n"
        "[model]\nwindow_min = 15\n[families]\nenabled = []\n[backtest]\nenabled = false\n"  # the pull is under test
        f'[sources.manticore]\nkind = "upptime"\npath = "{MANTICORE / "commits.jsonl"}"\nresolution_min = 15\n'
    )
    summary = nightly(config=str(cfg))
    assert summary["published"] and summary["dependencies_with_outages"] > 0
    assert read_latest(tmp_path / "bundles", "shedding") == summary["bundle_version"]
    inputs = verify_bundle(Path(summary["bundle_path"]))["inputs"]
    assert inputs["sha256"]["health_checks"] and summary["tables"]["health_checks"] > 0
    landed = json.loads((landing / "_pull" / "manticore.json").read_text())["files"]
    assert landed and all(rel.split("/")[1] == "source=manticore" for rel in landed)
    # A second source that is not there: the run stops before any work (the preflight names it); nothing is published.
    cfg.write_text(cfg.read_text() + f'[sources.github]\nkind = "statuspage"\npath = "{tmp_path / "missing.jsonl"}"\n')
    with pytest.raises(Exception, match="missing.jsonl"):
        nightly(config=str(cfg))
    assert read_latest(tmp_path / "bundles", "shedding") == summary["bundle_version"]
    assert not (landing / "_pull" / "github.json").exists() and not (landing / "services" / "source=github").exists()
