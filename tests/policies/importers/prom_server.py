"""A real Prometheus for tests: history written by promtool from an Upptime event log.

The Upptime history becomes blackbox-exporter series (``probe_success``,
``probe_duration_seconds``, ``probe_http_status_code`` with ``instance`` = site and
``job="blackbox"``): a sample every ``step_s`` while the site exists plus one at every status
change, each carrying the state that held at that moment.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")


def site_series(events: list[tuple[int, str, dict | None]], step_s: int) -> dict[str, np.ndarray]:
    """Per site: rows (t_s, success, duration_s, code) on the step grid and at every change, until deleted."""
    end = max(t for t, _, _ in events) // 1000
    by_site: dict[str, list[tuple[int, dict | None]]] = {}
    for t, site, doc in events:
        by_site.setdefault(site, []).append((t // 1000, doc))
    out = {}
    for site, evs in sorted(by_site.items()):
        live = [(t, d) for t, d in evs if d is not None]
        stop = evs[-1][0] if evs[-1][1] is None else end
        grid = np.arange(-(-live[0][0] // step_s) * step_s, stop + 1, step_s)
        times = np.unique(np.concatenate([grid, [t for t, _ in live if t <= stop]]))
        if evs[-1][1] is None:
            times = times[times < stop]
        ev_t = np.array([t for t, _ in live])
        rows = []
        for t in times.tolist():
            doc = live[int(np.searchsorted(ev_t, t, side="right")) - 1][1]
            up = str(doc.get("status", "up")).lower() != "down"
            rt = doc.get("responseTime") or 0
            rows.append((t, 1.0 if up else 0.0, rt / 1000.0, float(doc.get("code") or 0)))
        out[site] = np.array(rows, dtype=float)
    return out


def write_openmetrics(
    path: Path, series: dict[str, np.ndarray], t0_s: float, t1_s: float, *, alerts: bool = False, step_s: int = 60
) -> int:
    """The samples with t0 <= t < t1 as an OpenMetrics file (families grouped, time-ordered).

    ``alerts``: also ``ALERTS{alertname="ProbeDown",alertstate="firing"}`` at every grid time a site is down,
    as a rule ``probe_success == 0`` evaluated every step would have written it.
    """
    lines, n = [], 0
    for col, (name, kind) in enumerate(
        [("probe_success", "gauge"), ("probe_duration_seconds", "gauge"), ("probe_http_status_code", "gauge")], 1
    ):
        lines.append(f"# TYPE {name} {kind}")
        for site, rows in series.items():
            keep = rows[(rows[:, 0] >= t0_s) & (rows[:, 0] < t1_s)]
            labels = f'{{instance="{site}",job="blackbox"}}'
            lines += [f"{name}{labels} {v:g} {int(t)}" for t, v in zip(keep[:, 0], keep[:, col])]
            n += len(keep)
    if alerts:
        lines.append("# TYPE ALERTS gauge")
        for site, rows in series.items():
            keep = rows[(rows[:, 0] >= t0_s) & (rows[:, 0] < t1_s) & (rows[:, 0] % step_s == 0) & (rows[:, 1] == 0)]
            labels = f'{{alertname="ProbeDown",alertstate="firing",instance="{site}",severity="critical"}}'
            lines += [f"ALERTS{labels} 1 {int(t)}" for t in keep[:, 0]]
    lines.append("# EOF")
    path.write_text("\n".join(lines) + "\n")
    return n


def create_blocks(om_file: Path, data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", "-q", str(om_file), str(data_dir)], check=True
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def prometheus(data_dir: Path, work: Path, deadline_s: float = 120.0) -> Iterator[str]:
    """Run Prometheus on loopback over ``data_dir`` (no scrape targets); yields its URL; stops it by pid."""
    config = work / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1h\nscrape_configs: []\n")
    port = free_port()
    log = (work / f"prometheus-{port}.log").open("wb")
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={data_dir}",
            "--storage.tsdb.retention.time=100y",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        until = time.monotonic() + deadline_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prometheus exited ({proc.returncode}): {Path(log.name).read_text()[-500:]}")
            try:
                with urllib.request.urlopen(url + "/-/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > until:
                raise RuntimeError(f"prometheus not ready after {deadline_s} s")
            time.sleep(0.2)  # poll interval while waiting on the readiness condition
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
