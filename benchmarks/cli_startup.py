"""Wall time of the operator's short commands, from invocation, against the 0.5 s goal.

    .venv/bin/python benchmarks/cli_startup.py [--runs 15] [--store DIR --config FILE]

Every command runs as a fresh process (``subprocess``, the installed ``qres`` entry
point), ``--runs`` times, interleaved (one round runs every command once, in a shuffled
order), so a burst of load on a shared machine hits every command alike. Measured: ``qres
--help``, every sub-command's ``--help``, and ``qres decide``, ``qres verify`` and ``qres
versions`` on a signed bundle the set-up publishes once (60 workloads x 42 scenarios, the
sample's size; or an existing store with ``--store``/``--config``), side by side with
``python -c pass`` (the floor), ``python -c "import qres_client"`` and ``python -c "import
qres_client.client"`` (what ``decide`` must load: the client, pyarrow, numpy). Prints the median and
p90 of each, and median / 0.5 s.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
GOAL_S = 0.5


def publish_sample_sized_bundle(tmp: Path) -> Path:
    """A signed shedding bundle of the sample's size; returns the qres.toml that points at it."""
    import pyarrow as pa

    from policies.bundle.store import publish_bundle
    from policies.scenarios.scenario_set import FALLBACK_KEY, NORMAL_KEY, scenario_key
    from qres_client.bundle import encode_json, encode_parquet
    from qres_client.schema import DECISIONS_SHEDDING
    from qres_client.signing import init_keys, load_signing_key

    private, _ = init_keys(tmp / "keys")
    deps = [f"svc-{i:02d}" for i in range(40)]
    scenarios = [(NORMAL_KEY, [])] + [(scenario_key([d], []), [d]) for d in deps] + [(FALLBACK_KEY, deps)]
    rows = [
        {
            "scenario_key": key,
            "down": down,
            "degraded": [],
            "effective_down": down,
            "probability": 0.001,
            "workload_id": f"wl-{w:02d}",
            "admit": 1.0 if w % (len(down) + 2) else 0.5,
            "rank": w + 1,
        }
        for key, down in scenarios
        for w in range(60)
    ]
    files = {
        "decisions.parquet": encode_parquet(pa.Table.from_pylist(rows, schema=DECISIONS_SHEDDING)),
        "policy.json": encode_json({"scenarios": sorted(k for k, _ in scenarios)}),
    }
    publish_bundle(
        tmp / "bundles", "shedding", files, {"mlflow_run_id": "bench"}, signer=load_signing_key(private).sign
    )
    cfg = tmp / "qres.toml"
    cfg.write_text(
        f'store_dir = "{tmp / "bundles"}"\nstate_dir = "{tmp / "state"}"\n[bundle]\nkey_dir = "{tmp / "keys"}"\n'
    )
    return cfg


def help_commands() -> list[list[str]]:
    """``--help`` of the top level and of every (nested) sub-command, read from the click tree."""
    import typer.main

    from flows.cli.app import app

    found: list[list[str]] = []

    def walk(cmd, path: list[str]) -> None:
        found.append([*path, "--help"])
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


def p90(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=10, method="inclusive")[-1] if len(xs) > 1 else xs[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs of every command (interleaved rounds)")
    parser.add_argument("--config", type=Path, help="qres.toml of an existing store (default: a bundle made here)")
    parser.add_argument("--down", default="svc-03", help="dependency `qres decide` is asked about")
    parser.add_argument("--seed", type=int, default=0, help="shuffle seed of the order within a round")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="qres-bench-startup-"))
    try:
        cfg = str(args.config or publish_sample_sized_bundle(tmp))
        qres, py = str(BIN / "qres"), str(BIN / "python")
        commands: dict[str, list[str]] = {
            "python -c pass": [py, "-c", "pass"],
            "python -c 'import qres_client'": [py, "-c", "import qres_client"],
            # what `qres decide` cannot do without: the client with its pyarrow and numpy
            "python -c 'import qres_client.client'": [py, "-c", "import qres_client.client"],
        }
        for h in help_commands():
            commands["qres " + " ".join(h)] = [qres, *h]
        commands["qres decide"] = [qres, "decide", "--config", cfg, "--down", args.down]
        commands["qres verify"] = [qres, "verify", "--config", cfg]
        commands["qres versions"] = [qres, "versions", "--config", cfg]
        env = {**os.environ, "COLUMNS": "100"}
        for name, argv in commands.items():  # once each first: a command that fails is not timed
            res = subprocess.run(argv, capture_output=True, env=env, cwd=tmp, timeout=120)
            if res.returncode != 0:
                raise SystemExit(f"{name} failed ({res.returncode}): {res.stderr.decode()[-2000:]}")
        times: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        order = list(commands)
        rng = random.Random(args.seed)
        for _ in range(args.runs):
            rng.shuffle(order)
            for name in order:
                r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
                subprocess.run(commands[name], capture_output=True, env=env, cwd=tmp, timeout=120, check=True)
                times[name].append(time.perf_counter() - t0)
                r1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # one child at a time: the delta is its CPU
                cpu[name].append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    floor = statistics.median(times["python -c pass"])
    width = max(len(n) for n in commands)
    print(f"{args.runs} runs each, interleaved; load average at the end {os.getloadavg()[0]:.1f}")
    # CPU seconds (user + sys of the process) move far less with the machine's load than wall time:
    # on a quiet machine a single-threaded start-up's wall time is about its CPU time.
    print(f"{'command':<{width}}  {'median s':>9}  {'p90 s':>7}  {'- floor':>8}  {'/ 0.5 s':>8}  {'CPU s':>6}")
    met = met_cpu = 0
    for name, xs in times.items():
        med, med_cpu = statistics.median(xs), statistics.median(cpu[name])
        is_qres = name.startswith("qres")
        met += is_qres and med <= GOAL_S
        met_cpu += is_qres and med_cpu <= GOAL_S
        ratio = f"{med / GOAL_S:>8.2f}" if is_qres else f"{'':>8}"
        print(f"{name:<{width}}  {med:>9.3f}  {p90(xs):>7.3f}  {med - floor:>8.3f}  {ratio}  {med_cpu:>6.3f}")
    qres_names = [n for n in times if n.startswith("qres")]
    worst = max(qres_names, key=lambda n: statistics.median(times[n]))
    worst_cpu = max(qres_names, key=lambda n: statistics.median(cpu[n]))
    print(
        f"goal (median <= {GOAL_S} s): wall {met} of {len(qres_names)} qres commands met (slowest {worst} at "
        f"{statistics.median(times[worst]):.3f} s); CPU {met_cpu} of {len(qres_names)} "
        f"(slowest {worst_cpu} at {statistics.median(cpu[worst_cpu]):.3f} s)"
    )


if __name__ == "__main__":
    main()
