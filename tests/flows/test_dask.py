"""Scale-out: the solve stage on a local Dask cluster gives the same bundle bytes as threads."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def _config(tmp: Path, data: Path, name: str) -> Path:
    cfg = tmp / f"{name}.toml"
    cfg.write_text(
        f'data_dir = "{data}"\nstore_dir = "{tmp / name}-bundles"\nstate_dir = "{tmp / name}-state"\nseed = 5\n'
        "[solve]\ntime_limit_s = 1.0\nanneal_num_reads = 4\nanneal_num_sweeps = 100\n"
        "[backtest]\nenabled = false\n"
        "[orchestration]\nsolve_cache = false\nsolve_chunk = 8\ntask_timeout_s = 300\n"  # every scenario solved, several chunks
    )
    return cfg


def test_dask_runner_gives_the_same_bytes(prefect_harness, small_sample: Path, tmp_path: Path) -> None:
    from flows.nightly import nightly
    from flows.runners import with_runner

    threads = nightly(config=str(_config(tmp_path, small_sample, "threads")))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        dask = with_runner(
            nightly, "dask", cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "processes": True}
        )(config=str(_config(tmp_path, small_sample, "dask")))
    # the health checks stay in the flow's process (routing gets their latency pool, not the table)
    assert not [w for w in seen if "large graph" in str(w.message)]
    assert threads["published"] and dask["published"]
    # really solved (no cache: every distinct problem; equal problems are solved once), in more than one chunk
    assert dask["scenarios"] >= dask["scenarios_solved"] == threads["scenarios_solved"] > 8
    for name in ("decisions.parquet", "policy.json"):
        assert (Path(dask["bundle_path"]) / name).read_bytes() == (Path(threads["bundle_path"]) / name).read_bytes()
