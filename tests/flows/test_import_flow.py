"""A real Upptime history, imported, runs through the real nightly flow and publishes."""

from __future__ import annotations

from pathlib import Path

import pytest

from qres_client.bundle import read_latest, verify_bundle

pytestmark = pytest.mark.e2e

MANTICORE = Path(__file__).resolve().parents[2].parent / "shared" / "realdata" / "upptime" / "manticore"


@pytest.mark.skipif(not (MANTICORE / "commits.jsonl").is_file(), reason="shared real data not present")
def test_imported_upptime_history_publishes(prefect_harness, tmp_path: Path) -> None:
    from flows.nightly import nightly
    from policies.telemetry.importers.upptime import import_upptime
    from qres_client.signing import init_keys

    data = tmp_path / "manticore"
    rows = import_upptime(str(MANTICORE / "commits.jsonl"), data).rows
    assert rows["incidents"] > 0 and rows["health_checks"] > 0
    init_keys(tmp_path / "state" / "keys")
    cfg = tmp_path / "qres.toml"
    cfg.write_text(
        f'data_dir = "{data}"\nstore_dir = "bundles"\nstate_dir = "state"\nseed = 3\n'
        "[solve]\ntime_limit_s = 0.5\nanneal_num_reads = 4\nanneal_num_sweeps = 100\n"
        "[scenarios]\nsample_max = 0\n"
    )
    summary = nightly(config=str(cfg))
    assert summary["published"] and summary["rows_validated"] == sum(rows.values())
    assert read_latest(tmp_path / "bundles", "shedding") == summary["bundle_version"]
    manifest = verify_bundle(Path(summary["bundle_path"]))
    assert manifest["inputs"]["sha256"]["health_checks"] and summary["dependencies_with_outages"] > 0
