"""The nightly's backtest alone on a fleet's mapped day files: wall time, peak memory, figures' digest.

    .venv/bin/python benchmarks/backtest_scale.py --data .qres/bench/fleet/s250-d30-seed7 [--json FILE]

Ingests ``--data`` as the nightly does (incremental, the health checks as memory-mapped Arrow
day files in a temporary state folder), then runs the nightly's backtest (its settings, no
standby, no caches) in this process while a thread samples ``/proc/self/status`` every 0.05 s:
peak RSS, its anonymous part and its file-backed part (resident pages of the mapped day files).
Prints those, the seconds, the cost per health-check row and a sha256 of the figures (the
result less the trained policy, as JSON) and of the trained decision files, so a change to the
replay can be checked byte for byte before and after on the same data. Run it under py-spy to
see where the time goes (``py-spy record -o out.svg -- .venv/bin/python benchmarks/...``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _status() -> dict[str, int]:
    """VmRSS, RssAnon and RssFile of this process, in bytes."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0]) * 1024
    return out


class Peaks:
    """Largest VmRSS / RssAnon / RssFile seen by a sampling thread while the block runs."""

    def __init__(self, every_s: float = 0.05) -> None:
        self.every_s, self.peak, self._stop = every_s, dict.fromkeys(("VmRSS", "RssAnon", "RssFile"), 0), None

    def __enter__(self) -> Peaks:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            for key, value in _status().items():
                self.peak[key] = max(self.peak[key], value)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a `qres sample` folder")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()

    import policies.backtest.run as run_mod
    from flows.params import backtest_config
    from flows.settings import load_settings
    from policies.backtest.run import run_backtest
    from policies.telemetry.ingest import conform_tables
    from policies.telemetry.mapped import mapped_bytes, release_pages
    from policies.telemetry.watermark import ingest_incremental

    with tempfile.TemporaryDirectory(prefix="qres-bench-backtest-scale-") as tmp:
        t0 = time.perf_counter()
        tables = conform_tables(ingest_incremental(args.data, Path(tmp) / "state").tables)
        release_pages()
        rows = tables["health_checks"].num_rows
        print(f"# ingested {rows:,} rows in {time.perf_counter() - t0:.1f} s; {mapped_bytes() / 1e9:.2f} GB mapped")
        cfg = backtest_config(load_settings(None))
        start = _status()
        train_s = []  # the training on the past (fit, solve, time-coupled plans), timed apart from the rest
        train_policy = run_mod.train_policy

        def timed_train(*a, **k):
            t = time.perf_counter()
            try:
                return train_policy(*a, **k)
            finally:
                train_s.append(time.perf_counter() - t)

        run_mod.train_policy = timed_train

        with Peaks() as peaks:
            t0 = time.perf_counter()
            result = run_backtest(tables, cfg, standby=())  # as the nightly: no standby replayed
            wall = time.perf_counter() - t0
        train = result.pop("train")
        figures = json.dumps(result, sort_keys=True, default=str)
        files = hashlib.sha256()
        for name in sorted(train.files):
            files.update(name.encode() + train.files[name])
        gb = {k: v / 1e9 for k, v in peaks.peak.items()}
        print(
            f"backtest {wall:.1f} s ({wall / rows * 1e6:.3f} us/row), {result['n_incidents']} incidents; "
            f"peak RSS {gb['VmRSS']:.2f} GB, anonymous {gb['RssAnon']:.2f}, file pages {gb['RssFile']:.2f} "
            f"(at start {start['VmRSS'] / 1e9:.2f} / {start['RssAnon'] / 1e9:.2f} / {start['RssFile'] / 1e9:.2f})"
        )
        print(
            f"of which training on the past {sum(train_s):.1f} s; the rest (fit, replay, oracle) {wall - sum(train_s):.1f} s"
        )
        print(f"figures sha256 {hashlib.sha256(figures.encode()).hexdigest()}")
        print(f"trained files sha256 {files.hexdigest()}")
        if args.json:
            args.json.write_text(figures)


if __name__ == "__main__":
    main()
