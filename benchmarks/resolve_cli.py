"""The re-solve as the operator meets it: at the command line, and by event on a warm served deployment.

    .venv/bin/python benchmarks/resolve_cli.py [--pairs 2] [--events 3] [--handoffs 0] [--data data/sample]

Part 1, command line: on a hard-linked copy of the sample, ``--pairs`` interleaved pairs of
``qres run`` (solve caches cleared first: a full nightly) and, after appending a day with a new
incident, ``qres resolve --incident ID``; each is one fresh process (Prefect's temporary API,
imports and all), timed from invocation to exit. Prints every pair, the medians and
resolve / run (goal <= 0.25).

Part 2, event-triggered: a real ``prefect server start`` on 127.0.0.1 (own PREFECT_HOME and
SQLite), one ``qres run`` against it (LATEST and caches exist), then ``qres serve-flows``, the
long-lived process that serves the resolve deployment with its event trigger. One warm-up
event, then ``--events`` timed ones: append an incident day, POST ``incident.resolved`` to
the server's events API, time until the triggered run completes and LATEST moves (goal
<= 10 s). Every process started here is stopped by its pid (its own process group).

Part 3, ``--handoffs``: ``qres resolve`` handing the re-solve to that warm worker (flows/handoff.py:
it reads the served deployment, creates a run, waits for it and prints the flow's summary, without
importing Prefect or the pipeline). With the server and ``qres serve-flows`` of part 2 running,
one warm-up, then ``--handoffs`` interleaved pairs of ``qres run`` against the same server (solve
caches cleared: a full nightly) and ``qres resolve --incident ID --served`` after appending an
incident day, each a fresh process timed from invocation to exit and to the new LATEST. Prints
every pair (with where its seconds went, from the run's states), the medians and two ratios over
``qres run``'s wall time: to the published bundle (the goal's measure, <= 0.25) and, stricter,
to the command's exit.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
DEPENDENCY = "saas-maps"


def _wait(predicate, timeout_s: float, what: str, step_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(step_s)
    raise SystemExit(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _latest(store: Path) -> str | None:
    p = store / "shedding" / "LATEST"
    return p.read_text().strip() if p.exists() else None


def _qres(args: list[str], env: dict, cwd: Path) -> float:
    t0 = time.perf_counter()
    res = subprocess.run([str(BIN / "qres"), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=3600)
    took = time.perf_counter() - t0
    if res.returncode not in (0, 3):
        raise SystemExit(f"qres {' '.join(args)} failed ({res.returncode}):\n{res.stdout[-2000:]}{res.stderr[-3000:]}")
    return took


def project(tmp: Path, data_src: Path) -> tuple[Path, Path, dict]:
    data = tmp / "data"
    shutil.copytree(data_src, data, copy_function=os.link)  # hard links; appends write new files
    cfg = tmp / "qres.toml"
    cfg.write_text(f'data_dir = "{data}"\nstore_dir = "bundles"\nstate_dir = "state"\nseed = 7\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update({"QRES_CONFIG": str(cfg), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"})
    _qres(["keys", "init", "--exist-ok"], env, tmp)
    return data, cfg, env


def command_line(tmp: Path, data_src: Path, pairs: int) -> tuple[float, float]:
    from policies.telemetry.incidents import append_incident_day

    data, _, env = project(tmp, data_src)
    runs, resolves = [], []
    for i in range(pairs):
        shutil.rmtree(tmp / "state" / "cache", ignore_errors=True)  # every scenario and family solved
        runs.append(_qres(["run", "--quiet"], env, tmp))
        append_incident_day(data, dependency=DEPENDENCY, incident_id=f"INC-CLI-{i}", outage_min=120)
        resolves.append(_qres(["resolve", "--incident", f"INC-CLI-{i}", "--quiet"], env, tmp))
        print(f"  pair {i + 1}: qres run {runs[-1]:.1f} s, qres resolve {resolves[-1]:.1f} s", flush=True)
    return statistics.median(runs), statistics.median(resolves)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post_event(api: str, incident: str) -> None:
    import httpx

    event = {
        "id": str(uuid.uuid4()),
        "occurred": datetime.now(UTC).isoformat(),
        "event": "incident.resolved",
        "resource": {"prefect.resource.id": f"qres.incident.{incident}"},
        "payload": {"incident": incident, "dependencies": []},
    }
    httpx.post(f"{api}/events", json=[event], timeout=30).raise_for_status()


def _triggered(api: str, incident: str) -> list[dict]:
    import httpx

    runs = httpx.post(f"{api}/flow_runs/filter", json={}, timeout=30).json()
    return [r for r in runs if r["parameters"].get("incident") == incident]


def _timeline(api: str, run: dict, invoked: datetime, took_s: float) -> str:
    """Where a hand-off's seconds went, from the run's state history on the server's clock (the
    same machine): the command until the run exists, the worker's pick-up (Scheduled -> Pending),
    the start of the run's process (-> Running), the run, and the command after the run ended."""
    import httpx

    states = httpx.get(f"{api}/flow_run_states/", params={"flow_run_id": run["id"]}, timeout=30).json()
    at = {s["type"]: datetime.fromisoformat(s["timestamp"]) for s in states}
    marks = [invoked, datetime.fromisoformat(run["created"]), at.get("PENDING"), at.get("RUNNING"), at.get("COMPLETED")]
    if None in marks:
        return "states " + ", ".join(sorted(at))
    gaps = [(b - a).total_seconds() for a, b in zip(marks, marks[1:], strict=False)]
    tail = took_s - (marks[-1] - invoked).total_seconds()
    return "command -> run {:.2f} s, pick-up {:.2f} s, start {:.2f} s, run {:.2f} s, -> exit {:.2f} s".format(
        *gaps, tail
    )


def _handoffs(data: Path, store: Path, env: dict, tmp: Path, n: int) -> dict:
    """Part 3: interleaved `qres run` and `qres resolve --served` (handed to the warm worker)."""
    from policies.telemetry.incidents import append_incident_day

    took, to_latest, runs = [], [], []
    for i in range(n + 1):  # the first is the warm-up (a hand-off alone)
        if i:
            shutil.rmtree(tmp / "state" / "cache", ignore_errors=True)
            runs.append(_qres(["run", "--quiet"], env, tmp))
        incident = f"INC-HANDOFF-{i}"
        append_incident_day(data, dependency=DEPENDENCY, incident_id=incident, outage_min=120)
        before, moved = _latest(store), []
        argv = [str(BIN / "qres"), "resolve", "--incident", incident, "--served", "--quiet"]
        t0, t0_wall = time.perf_counter(), datetime.now(UTC)
        proc = subprocess.Popen(argv, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while proc.poll() is None:
            if not moved and _latest(store) != before:
                moved.append(time.perf_counter() - t0)
            time.sleep(0.05)
        t = time.perf_counter() - t0
        stdout, stderr = proc.communicate()
        if proc.returncode not in (0, 3) or "on the served worker" not in stdout:
            raise SystemExit(
                f"the hand-off of {incident} failed ({proc.returncode}):\n{stdout[-2000:]}{stderr[-3000:]}"
            )
        if not moved and _latest(store) != before:
            moved.append(t)
        if i:
            took.append(t)
            to_latest += moved
            (r,) = _triggered(env["PREFECT_API_URL"], incident)
            print(
                f"  pair {i}: qres run {runs[-1]:.1f} s, qres resolve (hand-off) {t:.1f} s "
                f"(LATEST {before} -> {_latest(store)}{f' after {moved[0]:.1f} s' if moved else ''}; "
                f"{_timeline(env['PREFECT_API_URL'], r, t0_wall, t)})",
                flush=True,
            )
    med, run_s = statistics.median(took), statistics.median(runs)
    published = statistics.median(to_latest) if to_latest else float("nan")
    print(
        f"  median qres run {run_s:.1f} s; qres resolve (hand-off) to the published bundle {published:.1f} s "
        f"({len(to_latest)} of {len(took)} published), "
        f"ratio {published / run_s:.3f} (the goal's measure: <= 0.25); to the command's exit {med:.1f} s, "
        f"ratio {med / run_s:.3f}"
    )
    return {
        "handoff_s": took,
        "latest_s": to_latest,
        "run_s": runs,
        "ratio_published": published / run_s,
        "ratio": med / run_s,
    }


def event_triggered(
    tmp: Path, data_src: Path, events: int, handoffs: int = 0, report: dict | None = None
) -> list[tuple[float, float, bool]]:
    """(seconds to the run's completion, seconds to the new LATEST, LATEST moved) per timed event."""
    import httpx

    from policies.telemetry.incidents import append_incident_day

    data, _, env = project(tmp, data_src)
    api = f"http://127.0.0.1:{_free_port()}/api"
    env.update(
        {
            "PREFECT_HOME": str(tmp / "prefect"),
            "PREFECT_API_URL": api,
            "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{tmp / 'prefect.db'}",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_CLI_PROMPT": "false",
        }
    )
    store, procs, logs = tmp / "bundles", [], []

    def start(*argv: str) -> None:
        logs.append((tmp / f"{Path(argv[0]).name}-{len(procs)}.log").open("wb"))
        procs.append(
            subprocess.Popen(argv, cwd=tmp, env=env, stdout=logs[-1], stderr=subprocess.STDOUT, start_new_session=True)
        )

    def healthy() -> bool:
        try:
            return httpx.get(f"{api}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    results = []
    try:
        port = api.split(":")[2].split("/")[0]
        start(str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", port)
        _wait(healthy, 600, "the Prefect server", 0.5)
        _qres(["run", "--quiet"], env, tmp)  # LATEST, the solve caches and the last nightly's latencies
        recorded = httpx.post(f"{api}/flow_runs/filter", json={}).json()
        print(f"  `qres run` with PREFECT_API_URL set: {len(recorded)} flow run(s) recorded on that server", flush=True)
        start(str(BIN / "qres"), "serve-flows")
        names = lambda: {d["name"] for d in httpx.post(f"{api}/deployments/filter", json={}).json()}  # noqa: E731 - a poll
        _wait(lambda: "resolve" in names(), 600, "the served resolve deployment", 0.5)
        for i in range(events + 1 if events else 0):  # the first is the warm-up: automations load asynchronously
            incident = f"INC-EVT-{i}"
            append_incident_day(data, dependency=DEPENDENCY, incident_id=incident, outage_min=120)
            before, moved_at = _latest(store), []
            t0, sent = time.perf_counter(), datetime.now(UTC)
            _post_event(api, incident)
            while i == 0 and not _triggered(api, incident):  # resent until the automation is loaded and matches
                time.sleep(5)
                if not _triggered(api, incident):
                    _post_event(api, incident)

            def finished(incident=incident, before=before, moved_at=moved_at, t0=t0) -> list[dict]:
                if not moved_at and _latest(store) != before:
                    moved_at.append(time.perf_counter() - t0)
                return [r for r in _triggered(api, incident) if r["state_type"] in ("COMPLETED", "FAILED", "CRASHED")]

            run_done = _wait(finished, 900, f"the re-solve of {incident}", 0.1)
            t_done = time.perf_counter() - t0
            if run_done[0]["state_type"] != "COMPLETED":
                raise SystemExit(f"the triggered run ended {run_done[0]['state_type']}; logs in {tmp}")
            finished()
            if i:
                results.append((t_done, moved_at[0] if moved_at else float("nan"), bool(moved_at)))
                r = run_done[0]
                created, started, ended = (datetime.fromisoformat(r[k]) for k in ("created", "start_time", "end_time"))
                print(
                    f"  event {i}: LATEST {before} -> {_latest(store)} after {results[-1][1]:.1f} s, run completed "
                    f"after {t_done:.1f} s (event -> run created {(created - sent).total_seconds():.1f} s, -> started "
                    f"{(started - created).total_seconds():.1f} s, run {(ended - started).total_seconds():.1f} s)",
                    flush=True,
                )
        if handoffs and report is not None:
            report["handoff"] = _handoffs(data, store, env, tmp, handoffs)
    finally:
        for p in reversed(procs):  # each in its own process group: the server's and the forkserver's children too
            try:  # the worker first, gone before the server stops: it pauses its deployments there on the way out
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        for f in logs:
            f.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "sample")
    parser.add_argument("--pairs", type=int, default=2, help="interleaved (qres run, qres resolve) pairs; 0 skips")
    parser.add_argument("--events", type=int, default=3, help="timed incident events after a warm-up; 0 skips")
    parser.add_argument("--handoffs", type=int, default=0, help="timed hand-offs to the served worker; 0 skips")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs) for inspection")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="qres-bench-resolve-cli-"))
    report: dict = {}
    try:
        if args.pairs:
            print("command line (each a fresh process, Prefect's temporary API):", flush=True)
            run_s, resolve_s = command_line(tmp / "cli", args.data, args.pairs)
            report["cli"] = {"run_s": run_s, "resolve_s": resolve_s, "ratio": resolve_s / run_s}
            print(f"median qres run {run_s:.1f} s, qres resolve {resolve_s:.1f} s")
            print(f"resolve / run = {resolve_s / run_s:.3f} (goal <= 0.25)", flush=True)
        if args.events or args.handoffs:
            print("on a served deployment (prefect server + qres serve-flows):", flush=True)
            got = event_triggered(tmp / "served", args.data, args.events, args.handoffs, report)
        if args.events:
            med = statistics.median(t for t, _, _ in got)
            published = [t for _, t, moved in got if moved]
            report["event"] = {"completed_s": [t for t, _, _ in got], "latest_s": published}
            print(
                f"median event -> completed re-solve {med:.1f} s; event -> new LATEST "
                f"{statistics.median(published) if published else float('nan'):.1f} s "
                f"({len(published)} of {len(got)} published; goal <= 10 s)"
            )
        print(json.dumps(report))
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
