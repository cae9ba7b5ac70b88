"""The share of Prefect and MLflow in a nightly's time, per stage, from a sampling profile.

    .venv/bin/python benchmarks/nightly_overhead.py [--data data/sample] [--rate 50] [--py-spy PATH] [--api-url URL]

On a hard-linked copy of the sample: one ``qres run`` to set up (MLflow store, Prefect's
database, keys), then one profiled ``qres run`` with the solve caches cleared (a full
nightly), under ``py-spy record --subprocesses`` (so Prefect's temporary API server is
counted too). Every sample is charged to whoever called into the code it shows: walking its
stack from the innermost frame out, the first frame from this project (flows/, tasks/,
policies/, qres_client/) makes it the pipeline's work, the first from ``prefect`` or
``mlflow`` (or any frame of the API server process) makes it framework overhead; library code
in between (pyarrow, SQLAlchemy, pydantic, imports) goes to whoever called it. Samples are
CPU-active time of every process (py-spy leaves idle threads out), so on two cores their sum
can exceed the wall time; the share is of that sum. Stage = the outermost ``tasks/<stage>.py``
frame; samples outside any task are ``start-up and orchestration``. Goal: framework <= 25%.

``--wall``: the goal is a share of *wall* time, and on two cores the API server starts beside
the pipeline's imports. So this mode samples the main thread of ``qres run`` alone, idle or not
(``py-spy --idle --threads``, no subprocesses): its samples are the run's wall time, and each is
charged as above, except that the main thread waiting on a submitted task's future (the solves
on their threads) is charged to the pipeline, whose work it waits for.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
OURS = ("flows/", "tasks/", "policies/", "qres_client/")
FRAMEWORK = ("prefect/", "mlflow/", "prefect_dask/")
GOAL = 0.25


def _file_of(frame: str) -> str:
    """py-spy's raw frame is ``function (path:line)``; the path, with site-packages cut off."""
    inside = frame.rsplit("(", 1)[-1].rstrip(")")
    path = inside.rsplit(":", 1)[0]
    for cut in ("site-packages/", str(ROOT) + "/"):
        if cut in path:
            return path.split(cut, 1)[1]
    return path


def classify(frames: list[str]) -> tuple[str, str]:
    """(owner, stage) of one sample: owner is ours, framework or other."""
    files = [_file_of(f) for f in frames]
    stage = next((Path(f).stem for f in files if f.startswith("tasks/") and f.count("/") == 1), None)
    # With --subprocesses py-spy names every process from the root down (qres, then the server
    # it started): the server's own frame is the second. Checking only the first left the server's
    # samples outside Prefect's files (its imports, runpy, threads: 4.1 of 14 s) to "other".
    if any(f.startswith("process") and ("uvicorn" in f or "prefect server" in f) for f in frames[:2]):
        return "framework", "Prefect API server"
    if any(f.startswith("tasks/support/tracking_warmup.py") for f in files):  # loading MLflow, or waiting for it
        return "framework", stage or "start-up and orchestration"
    if any(f.startswith("flows/embedded_api.py") for f in files):  # starting, awaiting, stopping that server
        return "framework", stage or "start-up and orchestration"
    for f in reversed(files):
        if f.startswith(FRAMEWORK):
            return "framework", stage or "start-up and orchestration"
        if f.startswith(OURS):
            return "ours", stage or "start-up and orchestration"
    return "other", stage or "start-up and orchestration"


def classify_wall(frames: list[str]) -> tuple[str, str] | None:
    """(owner, stage) of a main-thread sample of a ``--idle --threads`` profile; None for other threads."""
    if not frames or not frames[0].startswith("thread") or "MainThread" not in frames[0]:
        return None
    owner, stage = classify(frames[1:])
    files = [_file_of(f) for f in frames[1:]]
    if owner == "framework" and files[-1].startswith("threading.py") and "prefect/futures.py" in files:
        return "ours", stage  # waiting on a submitted task: the work runs on its thread
    return owner, stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "sample")
    parser.add_argument("--rate", type=int, default=50, help="py-spy samples per second")
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "/work/main/.qres/tools/bin/py-spy")
    parser.add_argument("--raw", type=Path, help="classify this existing py-spy raw file instead of running")
    parser.add_argument("--save-raw", type=Path, help="keep the py-spy raw profile here")
    parser.add_argument("--wall", action="store_true", help="share of the main thread's wall time (see above)")
    parser.add_argument(
        "--api-url",
        help="a running Prefect server's API (production set-up): the runs use it instead of a temporary "
        "server of their own, and that server's process is not profiled",
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="qres-bench-overhead-"))
    wall = float("nan")
    try:
        raw = args.raw
        if raw is None:
            data = tmp / "data"
            shutil.copytree(args.data, data, copy_function=os.link)
            cfg = tmp / "qres.toml"
            cfg.write_text(f'data_dir = "{data}"\nstore_dir = "bundles"\nstate_dir = "state"\nseed = 7\n')
            env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
            env["QRES_CONFIG"] = str(cfg)
            if args.api_url:
                env["PREFECT_API_URL"] = args.api_url
            qres = str(BIN / "qres")
            for argv in ([qres, "keys", "init", "--exist-ok"], [qres, "run", "--quiet"]):  # set-up, not profiled
                subprocess.run(argv, cwd=tmp, env=env, check=True, capture_output=True, timeout=3600)
            shutil.rmtree(tmp / "state" / "cache", ignore_errors=True)
            raw = tmp / "profile.txt"
            mode = ["--idle", "--threads"] if args.wall else ["--subprocesses"]
            spy = [args.py_spy, "record", *mode, "--rate", str(args.rate), "--format", "raw"]
            t0 = time.perf_counter()
            subprocess.run(
                [*spy, "-o", str(raw), "--", qres, "run", "--quiet"],
                cwd=tmp,
                env=env,
                check=True,
                capture_output=True,
                timeout=3600,
            )
            wall = time.perf_counter() - t0
            if args.save_raw:
                shutil.copyfile(raw, args.save_raw)
        by = collections.defaultdict(collections.Counter)
        other = collections.Counter()  # where the samples charged to nobody are: process and outermost frames
        for line in raw.read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            if not n.isdigit():
                continue  # a wrapped line of a multi-line command (python -c "...")
            frames = stack.split(";")
            got = classify_wall(frames) if args.wall else classify(frames)
            if got is None:
                continue
            owner, stage = got
            by[stage][owner] += int(n)
            if owner == "other":
                other[(frames[0][:60], *(_file_of(f) for f in frames[1:3]))] += int(n)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    total = sum(sum(c.values()) for c in by.values())
    framework = sum(c["framework"] for c in by.values())
    what = "the main thread's wall time" if args.wall else "sampled CPU time"
    print(f"profiled `qres run` (full nightly): wall {wall:.1f} s, {total / args.rate:.1f} s of {what}")
    print(
        f"{'stage':<28}{'wall s' if args.wall else 'CPU s':>8}{'ours':>8}{'framework':>11}{'other':>8}{'framework share':>17}"
    )
    for stage, c in sorted(by.items(), key=lambda kv: -sum(kv[1].values())):
        n = sum(c.values())
        print(
            f"{stage:<28}{n / args.rate:>8.1f}{c['ours'] / args.rate:>8.1f}{c['framework'] / args.rate:>11.1f}"
            f"{c['other'] / args.rate:>8.1f}{c['framework'] / n:>17.1%}"
        )
    print("samples charged to neither, by process and outermost frames:")
    for key, n in other.most_common(5):
        print(f"  {n / args.rate:>6.1f} s  {' > '.join(key)}")
    share = framework / total if total else float("nan")
    print(f"Prefect + MLflow: {share:.1%} of {what} (goal <= {GOAL:.0%}: {'met' if share <= GOAL else 'not met'})")


if __name__ == "__main__":
    main()
