"""`qres-serve` on loopback against the in-process decide(): p50/p99 latency and requests/s.

Run (from the repository root): .venv/bin/python -m benchmarks.serve [--scenarios 2000] [--requests 3000] [--seconds 15]
Starts `python -m qres_client.serve` (uvicorn, one process) on a free 127.0.0.1 port over a
synthetic signed bundle, then at 1, 16 and 64 concurrent keep-alive HTTP/1.1 clients (asyncio
streams, one connection each) sends up to ``--requests`` GET /v1/decide (or until ``--seconds``)
with exact, unmatched and fallback observations, and prints the figures next to the same
observations answered by PolicyClient.decide() in this process. Bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.client import build_table
from policies.bundle.store import publish_bundle
from qres_client.bundle import encode_json, encode_parquet
from qres_client.client import PolicyClient
from qres_client.signing import SigningKey


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def _client(port: int, paths: list[str], lat: list[float], stop_at: float) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for path in paths:
            if time.monotonic() > stop_at:
                return
            t0 = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head[:80]
            length = next(int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))
            await reader.readexactly(length)
            lat.append(time.perf_counter() - t0)
    finally:
        writer.close()


async def _level(port: int, paths: list[str], concurrency: int, seconds: float) -> tuple[list[float], float]:
    lat: list[float] = []
    per = [paths[i::concurrency] for i in range(concurrency)]
    t0 = time.perf_counter()
    await asyncio.gather(*(_client(port, p, lat, time.monotonic() + seconds) for p in per))
    return lat, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", type=int, default=2000)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--seconds", type=float, default=15.0)
    args = ap.parse_args()
    rng = random.Random(7)
    key = SigningKey.generate()
    with tempfile.TemporaryDirectory() as tmp:
        store, keyfile = Path(tmp) / "store", Path(tmp) / "qres-signing.pub"
        table, downs, services = build_table(args.scenarios, 20, 60, rng)
        files = {"decisions.parquet": encode_parquet(table), "policy.json": encode_json({"n": args.scenarios})}
        publish_bundle(store, "shedding", files, {"mlflow_run_id": "bench"}, signer=key.sign)
        keyfile.write_text(key.public.to_json(), encoding="ascii")
        observations = [rng.choice(downs) for _ in range(args.requests * 8 // 10)]
        observations += [tuple(rng.sample(services, 4)) for _ in range(args.requests - len(observations))]
        rng.shuffle(observations)
        paths = [f"/v1/decide?policy=shedding&down={','.join(d)}" for d in observations]

        client = PolicyClient(store, public_keys=key.public, unknown="ignore")
        for d in observations:  # warm: every decision built once, as the server's will be
            client.decide(down=d)
        inproc = []
        for d in observations:
            t0 = time.perf_counter()
            client.decide(down=d)
            inproc.append(time.perf_counter() - t0)

        port = _free_port()
        cmd = [sys.executable, "-m", "qres_client.serve", str(store), "--public-key", str(keyfile)]
        proc = subprocess.Popen([*cmd, "--port", str(port), "--unknown", "ignore"])
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("qres-serve did not become ready")
                time.sleep(0.1)
            asyncio.run(_level(port, paths[:200], 4, args.seconds))  # warm the server's decisions
            print(f"{args.scenarios} scenarios, {len(paths)} observations (80% exact, 20% unmatched)")
            print(f"{'':>22} {'p50 us':>10} {'p99 us':>10} {'req/s':>10}")
            s = sum(inproc)
            print(
                f"{'in-process decide()':>22} {_pct(inproc, 0.5) * 1e6:>10.1f} {_pct(inproc, 0.99) * 1e6:>10.1f}"
                f" {len(inproc) / s:>10.0f}"
            )
            for c in (1, 16, 64):
                lat, wall = asyncio.run(_level(port, paths, c, args.seconds))
                print(
                    f"{f'HTTP, {c} clients':>22} {_pct(lat, 0.5) * 1e6:>10.1f} {_pct(lat, 0.99) * 1e6:>10.1f}"
                    f" {len(lat) / wall:>10.0f}   ({len(lat)} requests, median {statistics.median(lat) * 1e3:.2f} ms)"
                )
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
