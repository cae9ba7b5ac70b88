"""Hive-partitioned telemetry (health_checks/date=.../part-0.parquet) runs through the real nightly flow."""

from __future__ import annotations

from pathlib import Path

import pytest

from qres_client.bundle import verify_bundle
from tests.policies.test_partitions import to_hive

pytestmark = pytest.mark.e2e


def test_nightly_on_a_hive_partitioned_lake(prefect_harness, small_sample: Path, tmp_path: Path) -> None:
    from flows.nightly import nightly
    from qres_client.signing import init_keys

    lake = to_hive(small_sample, tmp_path / "lake", by_service=True)
    days = sorted((lake / "health_checks").glob("service_id=*/date=*"))
    last_day = days[-1].name
    held = [d for d in days if d.name == last_day]
    for d in held:  # the last day lands after the first run, as new partitions
        d.rename(tmp_path / f"{d.parent.name}-{d.name}")
    init_keys(tmp_path / "state" / "keys")
    cfg = tmp_path / "qres.toml"
    cfg.write_text(
        f'data_dir = "{lake}"\nstore_dir = "bundles"\nstate_dir = "state"\nseed = 5\n'
        "[solve]\ntime_limit_s = 0.5\nanneal_num_reads = 4\nanneal_num_sweeps = 100\n[scenarios]\nsample_max = 0\n"
    )
    first = nightly(config=str(cfg))
    parts = sorted((tmp_path / "state" / "ingest").glob("*/parts/*"))
    assert first["published"] and parts
    assert verify_bundle(Path(first["bundle_path"]))["inputs"]["sha256"]["health_checks"]
    for d in held:
        d_src = tmp_path / f"{d.parent.name}-{d.name}"
        d_src.rename(d)
    second = nightly(config=str(cfg))
    assert second["tables"]["health_checks"] > first["tables"]["health_checks"]
    new = set((tmp_path / "state" / "ingest").glob("*/parts/*")) - set(parts)
    assert len(new) == len(held)  # new partitions are new parts; the others were reused
