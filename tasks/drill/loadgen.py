"""The load generator: sends the seed's invoice stream, on its schedule, to every drilled service.

Every service gets every invoice at the same offset, so the policies are compared on the same
traffic under the same faults. Results (each service's answer and the end-to-end latency) go to
``--out`` as JSON. Run: ``python -m tasks.drill.loadgen --invoices inv.json --target published=URL``.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tasks.drill.lifetime import announce, bounded, wait_start


def _post(url: str, inv: dict) -> dict:
    body = json.dumps(inv).encode()
    req = urllib.request.Request(url + "/invoice", data=body, headers={"Content-Type": "application/json"})  # noqa: S310 - loopback URL of a drilled service
    start = time.monotonic()
    timeout = max(3.0, 2 * float(inv["sla_s"]))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - same URL
            doc = json.loads(resp.read())
    except (OSError, urllib.error.URLError, ValueError) as exc:
        doc = {"status": "error", "why": f"{type(exc).__name__}: {exc}"[:200]}
    return {**doc, "latency_s": round(time.monotonic() - start, 4)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--invoices", type=Path, required=True)
    ap.add_argument("--target", action="append", default=[], help="policy=base URL of a drilled service")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--workers", type=int, default=96)
    ap.add_argument("--max-s", type=float, default=300.0)
    args = ap.parse_args(argv)
    invoices = json.loads(args.invoices.read_text())
    targets = dict(t.split("=", 1) for t in args.target)
    stopped = bounded(args.max_s, lambda: None)
    announce(str(len(invoices)))
    t0 = wait_start()
    futures = []
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        for inv in invoices:
            wait = t0 + float(inv["at_s"]) - time.time()
            if wait > 0 and stopped.wait(wait):
                break
            futures += [(policy, inv["invoice_id"], pool.submit(_post, url, inv)) for policy, url in targets.items()]
        results: dict[str, dict] = {p: {} for p in targets}
        for policy, iid, fut in futures:
            results[policy][iid] = fut.result()
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, sort_keys=True))
    tmp.replace(args.out)


if __name__ == "__main__":
    main()
