"""The drill's fault proxy and stand-ins as real processes on loopback: every fault mode, then stopped by pid."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from policies.drill.timeline import FaultPlan, Segment
from tasks.drill.procs import DrillProcessError, ProcessGroup
from tests.waits import WAIT_S


def _get(url: str, timeout: float = 5.0) -> tuple[int | str, float]:
    start = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            resp.read()
            code: int | str = resp.status
    except urllib.error.HTTPError as exc:
        code = exc.code
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        code = "timeout" if "timed out" in str(reason) else type(reason).__name__
    return code, time.monotonic() - start


def test_every_fault_mode_on_real_sockets(tmp_path: Path) -> None:
    roles = ("validation", "payment", "compute", "standby")
    plan = FaultPlan(
        "what-if",
        (),
        (),
        100.0,
        (
            Segment("validation", 0.0, 100.0, "refuse"),
            Segment("payment", 0.0, 100.0, "timeout"),
            Segment("compute", 0.0, 100.0, "errors", error_rate=1.0),
            Segment("standby", 0.0, 100.0, "latency", latency_ms=300.0),
        ),
    )
    (tmp_path / "plan.json").write_text(json.dumps(plan.as_dict()))
    with ProcessGroup(tmp_path / "logs") as group:
        for r in roles:
            group.start(r, [sys.executable, "-m", "tasks.drill.deps", "--role", r, "--max-s", "120"])
        ports = {r: group.ready(r, WAIT_S) for r in roles}
        ups = [a for r in roles for a in ("--upstream", f"{r}={ports[r]}")]
        group.start("proxy", [sys.executable, "-m", "tasks.drill.proxy", "--plan", str(tmp_path / "plan.json"), *ups])
        front = {
            r: f"http://127.0.0.1:{p}/health"
            for r, p in (kv.split("=") for kv in group.ready("proxy", WAIT_S).split(","))
        }
        assert {r: _get(u)[0] for r, u in front.items()} == dict.fromkeys(roles, 200)  # before START: pass through
        group.send("proxy", f"START {time.time()!r}")
        deadline = time.monotonic() + WAIT_S
        while _get(front["validation"])[0] == 200:  # START is read by a thread: wait for it to take hold
            assert time.monotonic() < deadline
        assert _get(front["validation"])[0] in ("ConnectionResetError", "RemoteDisconnected", "BadStatusLine")
        code, took = _get(front["payment"], timeout=1.0)
        assert code == "timeout" and took >= 0.9
        assert _get(front["compute"])[0] == 503
        code, took = _get(front["standby"])
        assert code == 200 and took >= 0.3
        pids = group.alive()
        assert len(pids) == 5
    for pid in pids:  # every process was stopped by its pid
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_process_that_dies_is_reported_with_its_log(tmp_path: Path) -> None:
    with ProcessGroup(tmp_path / "logs") as group, pytest.raises(DrillProcessError, match="did not start"):
        group.start("broken", [sys.executable, "-m", "tasks.drill.deps"])  # --role missing: argparse exits
        group.ready("broken", WAIT_S)
    assert "--role" in (tmp_path / "logs" / "broken.log").read_text()
