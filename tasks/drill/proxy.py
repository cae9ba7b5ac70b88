"""The fault injector: a small asyncio TCP proxy in front of each dependency, playing a fault plan.

Why our own: Toxiproxy, the usual choice, is a Go server that no package registry reachable here
ships (PyPI has only its clients, Debian not at all), so a drill could not install it. This proxy
does the few things a drill needs, per connection, from the plan's segment active at that moment:

* ``refuse``: the connection is reset as soon as it is accepted (the client sees a refusal/reset);
* ``timeout``: accepted, the request read, never answered (held until the client gives up or the
  segment ends, then reset);
* ``latency``: ``latency_ms`` added before the request is forwarded;
* ``errors``: a share ``error_rate`` of requests answered ``503`` by the proxy itself;
* ``partial``: both latency and errors (a partial recovery); flaps are short segments in a row.

Outside any segment, bytes pass through untouched. Time 0 is the epoch the orchestrator writes as
``START <epoch>`` on stdin; before it everything passes. The error draws come from ``--seed``.
Run: ``python -m tasks.drill.proxy --plan plan.json --upstream validation=41001 ...``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import struct
import threading
import time
import zlib
from pathlib import Path

from policies.drill.timeline import FaultPlan, active_segment
from tasks.drill.lifetime import announce, bounded, wait_start

_503 = b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class FaultProxy:
    def __init__(self, plan: FaultPlan, upstreams: dict[str, int], seed: int) -> None:
        self.plan, self.upstreams = plan, upstreams
        self.t0: float | None = None
        self.rng = {r: random.Random(seed * 1_000_003 + zlib.crc32(r.encode())) for r in upstreams}

    def now(self) -> float | None:
        return None if self.t0 is None else time.time() - self.t0

    async def handle(self, role: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        t = self.now()
        seg = None if t is None else active_segment(self.plan.segments, role, t)
        try:
            if seg is not None and seg.mode == "refuse":
                return _reset(writer)
            if seg is not None and seg.mode == "timeout":
                try:  # hold the connection, answer nothing
                    await asyncio.wait_for(reader.read(), timeout=max(0.0, seg.end_s - t))
                except TimeoutError:
                    pass
                return _reset(writer)
            if seg is not None and seg.latency_ms > 0:
                await asyncio.sleep(seg.latency_ms / 1000)
            if seg is not None and seg.error_rate > 0 and self.rng[role].random() < seg.error_rate:
                await _read_request(reader)
                writer.write(_503)
                await writer.drain()
                return writer.close()
            await self._pipe(role, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            writer.close()
        except asyncio.CancelledError:  # the proxy is stopping: drop the connection, end the task quietly
            writer.transport.abort()

    async def _pipe(self, role: str, reader, writer) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstreams[role])

        async def copy(src, dst) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass

        tasks = [asyncio.ensure_future(copy(reader, up_w)), asyncio.ensure_future(copy(up_r, writer))]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        up_w.close()
        writer.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:  # linger 0: close sends RST, as a refused or dropped connection looks
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip() or 0)
    if length:
        await reader.readexactly(length)


async def serve(proxy: FaultProxy, stop: asyncio.Event) -> None:
    servers, ports = [], {}
    for role in proxy.upstreams:
        server = await asyncio.start_server(lambda r, w, role=role: proxy.handle(role, r, w), "127.0.0.1", 0)
        servers.append(server)
        ports[role] = server.sockets[0].getsockname()[1]
    announce(",".join(f"{r}={p}" for r, p in ports.items()))
    threading.Thread(target=lambda: setattr(proxy, "t0", wait_start()), daemon=True).start()
    await stop.wait()
    for server in servers:
        server.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--plan", type=Path, required=True, help="fault plan JSON (FaultPlan.as_dict)")
    ap.add_argument("--upstream", action="append", default=[], help="role=port of the real dependency")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-s", type=float, default=300.0)
    args = ap.parse_args(argv)
    plan = FaultPlan.from_dict(json.loads(args.plan.read_text()))
    upstreams = {k: int(v) for k, _, v in (u.partition("=") for u in args.upstream)}

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        bounded(args.max_s, lambda: loop.call_soon_threadsafe(stop.set))
        await serve(FaultProxy(plan, upstreams, args.seed), stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
