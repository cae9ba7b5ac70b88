"""Concurrent ``qres run`` on one state folder: one publisher at a time, LATEST never backwards.

Every family's LATEST must end on versions of one and the same run (its MLflow run id in
each manifest), and a watcher that reads every LATEST while the runs go must never see one
move back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
FAMILIES = ("shedding", "standby", "routing")


def _latest(store: Path) -> dict[str, int]:
    out = {}
    for family in FAMILIES:
        try:
            out[family] = int((store / family / "LATEST").read_text().strip().lstrip("v"))
        except (FileNotFoundError, ValueError):  # not yet published (a rename is atomic: never half a name)
            continue
    return out


@pytest.mark.parametrize("runs", [2, 3])
def test_concurrent_runs_publish_one_run_at_a_time(small_sample: Path, tmp_path: Path, runs: int) -> None:
    cfg = tmp_path / "qres.toml"
    cfg.write_text(
        f'data_dir = "{small_sample}"\nstore_dir = "bundles"\nstate_dir = "state"\nseed = 5\n'
        "[solve]\ntime_limit_s = 1.0\nanneal_num_reads = 4\nanneal_num_sweeps = 100\n"
    )
    subprocess.run([BIN / "qres", "keys", "init", "-c", str(cfg)], check=True, capture_output=True, cwd=tmp_path)
    store = tmp_path / "bundles"
    seen: list[dict[str, int]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.append(_latest(store))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "COLUMNS": "400"}
    procs = [
        subprocess.Popen(
            [BIN / "qres", "run", "-c", str(cfg), "--quiet", "--json"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(runs)
    ]
    results = [p.communicate(timeout=1500) for p in procs]
    stop.set()
    watcher.join(timeout=10)
    seen.append(_latest(store))
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, (out[-2000:], err[-3000:])
    summaries = [json.loads(out[out.index("{") :]) for out, _ in results]
    for family in FAMILIES:
        series = [s[family] for s in seen if family in s]
        assert series == sorted(series), f"{family}: LATEST moved backwards: {series}"
    final = _latest(store)
    assert set(final) == set(FAMILIES)
    run_ids = {
        json.loads((store / f / f"v{final[f]:06d}" / "manifest.json").read_text())["mlflow_run_id"] for f in FAMILIES
    }
    assert len(run_ids) == 1, f"LATEST of the families come from different runs: {run_ids}"
    assert run_ids <= {s["mlflow_run_id"] for s in summaries}
    assert all(s["published"] for s in summaries)
