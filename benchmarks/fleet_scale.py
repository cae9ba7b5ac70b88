"""The nightly at 40, 250 and 1,000 services, stage by stage: wall time, peak memory, cost per row.

    prlimit --as=9000000000 .venv/bin/python benchmarks/fleet_scale.py [--services 40,250,1000]
        [--days 30] [--runners threads,dask] [--address tcp://127.0.0.1:8786] [--cache DIR]

For each size, ``qres sample --services N --days D`` (2 probes, 1-minute checks: N x 86,400
rows a month) is written once under ``--cache`` (default ``.qres/bench/fleet``), then one
nightly runs in a fresh child process on a new state folder and bundle store (every scenario
solved, nothing cached). The child marks where each stage starts (ingest, validate, estimate,
scenarios, solve, backtest, publish; ``start`` is imports and Prefect's temporary API before
the flow's first stage); this process polls the resident memory (RSS) of the child's whole
process tree every 0.1 s, so a stage's peak is the largest tree RSS while it ran (and the
anonymous part of it: RSS also counts resident pages of the memory-mapped health-check day
files, which the kernel can drop), plus the child's peak address space (VSZ, what ``prlimit
--as`` limits: the mapped files count in full). Stages are
contiguous: tiers, standby and routing solve on threads from ``solve`` on and may overlap the
backtest. The child is killed if the tree passes ``--max-gb`` (default 8); ``--stop-at STAGE``
ends it when that stage starts (to measure the early stages of a fleet whose solve takes hours).

``--runners threads,dask`` runs each size on both: for dask, a ``dask scheduler`` and two
``dask worker`` processes (one thread each) on 127.0.0.1 are started here (or ``--address``
names a running scheduler; ``--worker-memory 4GB`` gives each started worker that memory limit),
the flow goes through prefect-dask, the workers' memory counts with the nightly's, and a line
says whether the decision bytes are equal across the runners.

Prints one table per size, then the totals side by side with the cost per health-check row
and its ratio to the first size (goal at 1,000 services: <= 1.5x the cost per row at 40, the
nightly <= 15 min, peak < 8 GB). ``--json FILE`` keeps every figure. ``--bytes`` also prints
a sha256 of the shedding bundle's decision files (equal across runners on the same data).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAGES = ("start", "ingest", "validate", "estimate", "scenarios", "solve", "backtest", "publish")
PROBES = 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", default="40,250,1000", help="comma-separated fleet sizes")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runners", default="threads", help="comma-separated: threads, dask (each size on each)")
    parser.add_argument("--address", default=None, help="an existing Dask scheduler for dask (else one is started)")
    parser.add_argument(
        "--worker-memory", default=None, help="each started Dask worker's --memory-limit (e.g. 4GB; default Dask's)"
    )
    parser.add_argument("--cache", default=str(ROOT / ".qres" / "bench" / "fleet"))
    parser.add_argument("--max-gb", type=float, default=8.0, help="kill the child beyond this tree RSS")
    parser.add_argument("--json", default=None, help="write every figure here")
    parser.add_argument("--stop-at", default=None, choices=STAGES[2:], help="end the nightly when this stage starts")
    parser.add_argument("--bytes", action="store_true", help="print the decision files' sha256")
    parser.add_argument(
        "--keep-allocators",
        action="store_true",
        help="do not set MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_, ARROW_DEFAULT_MEMORY_POOL",
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--runner", default="threads", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(Path(args.child), args.runner, args.address)
        return
    # Bounded allocator reservations, read at process start (inherited by the child and a Dask
    # cluster): under `prlimit --as` the 1,000-service solve ran out of address space (10 GB, 5.1
    # of it the mapped day files) at 4 GB of RSS, with mimalloc's 1 GiB arena and glibc's 64 MB
    # per-thread arenas reserved but untouched. The decisions do not depend on the allocator.
    if not args.keep_allocators:
        os.environ.setdefault("MALLOC_ARENA_MAX", "2")
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
        # a fixed mmap threshold: large arrays go back to the system when freed instead of
        # growing the heap (glibc raises the threshold after each large free otherwise)
        os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", "1048576")
    results = []
    runners = args.runners.split(",")
    for n in (int(x) for x in args.services.split(",")):
        data = _sample(Path(args.cache), n, args.days)
        for runner in runners:
            with _cluster(runner, args.address, args.worker_memory) as (address, extra):
                res = _measure(data, n, args.days, runner, address, args.max_gb, extra, args.stop_at)
            results.append(res)
            _print_one(res, args.bytes or len(runners) > 1)
        digests = {r["runner"]: r.get("decisions_sha256") for r in results if r["services"] == n}
        if len(digests) > 1:
            same = len(set(digests.values())) == 1 and None not in digests.values()
            print(f"{n:,} services: decision bytes equal across {', '.join(digests)}: {'yes' if same else 'NO'}")
    _print_totals([r for r in results if r["runner"] == runners[0]])
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def _sample(cache: Path, services: int, days: int) -> Path:
    """The fleet's telemetry, written once (a separate process: its memory is not the nightly's)."""
    out = cache / f"s{services}-d{days}-seed7"
    if not (out / "standby_candidates.parquet").exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        qres = [sys.executable, "-m", "flows.cli.app"] if not (ROOT / ".venv/bin/qres").exists() else [".venv/bin/qres"]
        cmd = [*qres, "sample", "--out", str(out), "--services", str(services), "--days", str(days)]
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        print(f"# wrote the {services}-service sample in {time.perf_counter() - t0:.0f} s: {out}", flush=True)
    return out


@contextlib.contextmanager
def _cluster(runner: str, address: str | None, worker_memory: str | None = None):
    """For dask without ``--address``: a ``dask scheduler`` and two ``dask worker`` processes on
    127.0.0.1 (one thread each, ``--memory-limit worker_memory`` when given: Dask's default is the
    machine's memory split between them, which a shared machine does not have), stopped by pid
    afterwards; their memory counts with the nightly's."""
    if runner != "dask" or address:
        yield address, []
        return
    # On a loaded 2-core machine the scheduler's event loop was seen unresponsive for 39 s (a
    # 26 MB graph arriving): the default 30 s comm timeout then cancels the flow's futures.
    for key in ("DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT", "DASK_DISTRIBUTED__COMM__TIMEOUTS__TCP"):
        os.environ.setdefault(key, "300s")  # inherited by the scheduler, the workers and the child
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    dask = str(Path(sys.executable).with_name("dask"))
    log = open(Path(tempfile.mkdtemp(prefix="qres-bench-dask-")) / "cluster.log", "w")
    quiet = {"stdout": log, "stderr": subprocess.STDOUT}
    procs = [
        subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], **quiet)
    ]
    worker = [dask, "worker", address, "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard"]
    worker += ["--memory-limit", worker_memory] if worker_memory else []
    procs += [subprocess.Popen(worker, **quiet) for _ in range(2)]
    try:
        from distributed import Client

        with Client(address, timeout=300) as client:
            client.wait_for_workers(2, timeout=600)
        yield address, procs
    finally:
        for p in reversed(procs):  # workers first, then the scheduler
            p.terminate()
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()


def _tree_rss(procs) -> tuple[int, int]:
    """(RSS, anonymous RSS) of the whole tree. RSS also counts the resident pages of files a
    process maps (the mapped health-check day files): clean pages the kernel drops under
    pressure. The anonymous part (RSS less file-backed and shared pages) is what cannot be."""
    import psutil

    total = anon = 0
    tree = [q for proc in procs for q in (proc, *_children(proc))]
    with contextlib.suppress(psutil.Error):
        for p in tree:
            with contextlib.suppress(psutil.Error):
                info = p.memory_info()
                total += info.rss
                anon += info.rss - info.shared
    return total, anon


def _children(proc) -> list:
    import psutil

    try:
        return proc.children(recursive=True)
    except psutil.Error:
        return []


def _measure(
    data: Path,
    services: int,
    days: int,
    runner: str,
    address: str | None,
    max_gb: float,
    extra: list,
    stop_at: str | None = None,
) -> dict:
    import psutil

    tmp = Path(tempfile.mkdtemp(prefix=f"qres-bench-fleet-{services}-"))
    spec = {"data": str(data), "tmp": str(tmp), "marks": str(tmp / "marks.jsonl"), "result": str(tmp / "result.json")}
    (tmp / "spec.json").write_text(json.dumps(spec))
    cmd = [sys.executable, __file__, "--child", str(tmp / "spec.json"), "--runner", runner]
    cmd += ["--address", address] if address else []
    samples: list[tuple[float, int, int]] = []
    vsz = 0
    t_start = time.time()
    child = subprocess.Popen(cmd, cwd=ROOT)
    proc = psutil.Process(child.pid)
    watched = [proc, *(psutil.Process(p.pid) for p in extra)]
    killed = None
    marks_file = Path(spec["marks"])
    while child.poll() is None:
        rss, anon = _tree_rss(watched)
        samples.append((time.time(), rss, anon))
        with contextlib.suppress(psutil.Error):  # the nightly's own address space, against prlimit --as
            vsz = max(vsz, proc.memory_info().vms)
        if killed is None and rss > max_gb * 1e9:
            killed = "killed (memory)"
        elif killed is None and stop_at and marks_file.exists() and f'"{stop_at}"' in marks_file.read_text():
            killed = f"stopped at {stop_at}"
        if killed:
            for p in proc.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    p.kill()
            child.kill()
            child.wait()
            break
        time.sleep(0.1)
    t_end = time.time()
    marks = (
        [json.loads(line) for line in Path(spec["marks"]).read_text().splitlines()]
        if Path(spec["marks"]).exists()
        else []
    )
    bounds = [("start", t_start, 0.0, 0.0)]
    bounds += [(m["stage"], m["t"], m.get("arrow_gb", 0.0), m.get("mapped_gb", 0.0)) for m in marks]
    t_end = next((t for name, t, *_ in bounds if name == stop_at), t_end)  # a stopped run ends at its stop
    stages = []
    for i, (name, t0, arrow_gb, mapped_gb) in enumerate(bounds):
        if name in ("end", stop_at):
            break
        t1 = bounds[i + 1][1] if i + 1 < len(bounds) else t_end
        peak = max((r for t, r, _ in samples if t0 <= t <= t1), default=0)
        anon = max((a for t, _, a in samples if t0 <= t <= t1), default=0)
        stages.append(
            {
                "stage": name,
                "wall_s": t1 - t0,
                "peak_gb": peak / 1e9,
                "anon_gb": anon / 1e9,
                "arrow_in_gb": arrow_gb,
                "mapped_gb": mapped_gb,
            }
        )
    rows = services * days * 1440 * PROBES
    out = {
        "services": services,
        "rows": rows,
        "runner": runner,
        "exit": killed or child.returncode,
        "wall_s": t_end - t_start,
        "peak_gb": max((r for _, r, _ in samples), default=0) / 1e9,
        "anon_gb": max((a for _, _, a in samples), default=0) / 1e9,
        "vsz_gb": vsz / 1e9,
        "stages": stages,
    }
    if Path(spec["result"]).exists():
        out |= json.loads(Path(spec["result"]).read_text())
    # The run's state holds the mapped health-check files (~59 bytes a row: 5 GB at 1,000 services).
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def _child(spec_path: Path, runner: str, address: str | None) -> None:
    """One nightly, with a mark written (and flushed) where each stage starts."""
    spec = json.loads(spec_path.read_text())
    tmp = Path(spec["tmp"])
    marks = open(spec["marks"], "a", buffering=1)

    def mark(stage: str) -> None:
        held = pa.total_allocated_bytes() / 1e9  # Arrow memory held when the stage starts
        on_disk = mapped_bytes() / 1e9  # ... and the day files mapped from disk (not held)
        marks.write(json.dumps({"stage": stage, "t": time.time(), "arrow_gb": held, "mapped_gb": on_disk}) + "\n")

    def at(module, name: str, stage: str) -> None:
        original = getattr(module, name)

        @functools.wraps(original)
        def wrapped(*a, **k):
            mark(stage)
            return original(*a, **k)

        setattr(module, name, wrapped)

    import pyarrow as pa

    from flows.environment import configure_environment, embedded_run
    from policies.telemetry.mapped import mapped_bytes

    configure_environment(tmp / "state")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    import flows.nightly as nightly_mod
    import flows.stages as stages_mod
    from flows.runners import with_runner

    at(nightly_mod, "ingest_and_validate", "ingest")
    at(nightly_mod, "fit_model", "estimate")
    at(nightly_mod, "build_scenarios", "scenarios")
    at(nightly_mod, "submit_families", "solve")
    at(nightly_mod, "_tracked", "publish")
    # Prefect tasks are called as ``with_timeout(task)(...)``: mark when a stage's task is wrapped.
    task_stages = {"validate": "validate", "backtest": "backtest"}
    for module in (nightly_mod, stages_mod):
        original_timeout = module.with_timeout

        def timed(task, seconds, _original=original_timeout):
            if task.name in task_stages:
                mark(task_stages[task.name])
            return _original(task, seconds)

        module.with_timeout = timed
    cfg = tmp / "qres.toml"
    cfg.write_text(
        f'data_dir = "{spec["data"]}"\nstore_dir = "bundles"\nstate_dir = "state"\nseed = 7\n'
        "[orchestration]\nstep_timeout_s = 7200\ntask_timeout_s = 7200\nflow_timeout_s = 14400\n"
    )
    with embedded_run():
        summary = with_runner(nightly_mod.nightly, runner, address)(config=str(cfg))
    mark("end")
    bundle = Path(summary["bundle_path"])
    digest = hashlib.sha256()
    for name in ("decisions.parquet", "policy.json", "tiers.json", "health.json", "fallback.json"):
        if (bundle / name).exists():
            digest.update(name.encode() + (bundle / name).read_bytes())
    result = {
        "published": summary["published"],
        "scenarios": summary["scenarios"],
        "dependencies": summary["dependencies"],
        "decisions_sha256": digest.hexdigest(),
    }
    Path(spec["result"]).write_text(json.dumps(result))


def _print_one(res: dict, show_bytes: bool) -> None:
    print(
        f"\n{res['services']:,} services, {res['rows']:,} health-check rows, runner {res['runner']}: "
        f"exit {res['exit']}, {res.get('scenarios', '?')} scenarios, published {res.get('published')}"
    )
    print(
        f"{'stage':<10} {'wall s':>9} {'peak GB':>8} {'anon GB':>8} {'us/row':>8} "
        f"{'Arrow GB held at start':>23} {'mapped GB':>9}"
    )
    for s in res["stages"]:
        print(
            f"{s['stage']:<10} {s['wall_s']:>9.1f} {s['peak_gb']:>8.2f} {s.get('anon_gb', 0):>8.2f} "
            f"{s['wall_s'] / res['rows'] * 1e6:>8.2f} {s.get('arrow_in_gb', 0):>23.2f} {s.get('mapped_gb', 0):>9.2f}"
        )
    work, anon = _work_s(res), res.get("anon_gb", 0)
    print(f"peak address space (VSZ) of the nightly's process: {res.get('vsz_gb', 0):.2f} GB")
    print(f"{'stages':<10} {work:>9.1f} {res['peak_gb']:>8.2f} {anon:>8.2f} {work / res['rows'] * 1e6:>8.2f}")
    print(
        f"{'process':<10} {res['wall_s']:>9.1f} {res['peak_gb']:>8.2f} {anon:>8.2f} "
        f"{res['wall_s'] / res['rows'] * 1e6:>8.2f}"
    )
    if show_bytes:
        print(f"decisions sha256: {res.get('decisions_sha256')}")
    sys.stdout.flush()


def _work_s(res: dict) -> float:
    """The stages' wall time: the process's less ``start`` (imports, Prefect's API), a fixed cost."""
    return sum(s["wall_s"] for s in res["stages"] if s["stage"] != "start")


def _print_totals(results: list[dict]) -> None:
    results = [r for r in results if _work_s(r) > 0]
    if not results:
        return
    base = results[0]
    print(
        f"\n{'services':>8} {'rows':>12} {'process s':>9} {'stages s':>8} {'peak GB':>8} {'us/row':>7} "
        f"{'x cost/row':>10} {'x (process)':>11} {'x peak':>7} {'anon GB':>8}"
    )
    for r in results:
        cost, base_cost = _work_s(r) / r["rows"], _work_s(base) / base["rows"]
        whole = (r["wall_s"] / r["rows"]) / (base["wall_s"] / base["rows"])
        print(
            f"{r['services']:>8,} {r['rows']:>12,} {r['wall_s']:>9.0f} {_work_s(r):>8.0f} {r['peak_gb']:>8.2f} "
            f"{cost * 1e6:>7.2f} {cost / base_cost:>10.2f} {whole:>11.2f} {r['peak_gb'] / base['peak_gb']:>7.2f} "
            f"{r.get('anon_gb', 0):>8.2f}"
        )
    names = [s["stage"] for s in base["stages"]]
    print(f"\nper stage, x against {base['services']} services (wall / peak):")
    print(f"{'stage':<10}" + "".join(f"{r['services']:>16,}" for r in results[1:]))
    for name in names:
        cells = []
        for r in results[1:]:
            a = next((s for s in base["stages"] if s["stage"] == name), None)
            b = next((s for s in r["stages"] if s["stage"] == name), None)
            ok = a and b and a["wall_s"] > 0 and a["peak_gb"] > 0
            cells.append(
                f"{b['wall_s'] / a['wall_s']:>7.1f} / {b['peak_gb'] / a['peak_gb']:>5.1f}" if ok else f"{'-':>16}"
            )
        print(f"{name:<10}" + "".join(f"{c:>16}" for c in cells))


if __name__ == "__main__":
    main()
