"""Warning-level rules a real history needs: services that look retired, histories too quiet to learn from.

These never fail validation: the data is well-formed, it just says something a person should
hear before trusting a model of it.

- **down too long**: a service whose checks say ``down`` without a break for longer than
  ``max_down_h`` is "probably retired or misconfigured" (a site nobody removed from the
  monitor, a probe pointed at the wrong URL), not an outage to learn from.
- **not checked too long**: a service with no check for longer than ``max_silent_h`` (between
  two checks, or from its last check to the end of the table) probably stopped being monitored.
- **too few outages**: fewer than ``min_outages`` changes into ``down`` over all services.

The checks stream: a table of day files (one chunk each) is read chunk by chunk with a running
state per service, so memory follows the largest file, not the history (the whole-table form
held ~100 bytes a row: 9 GB for a 1,000-service month). When a service's checks go back in
time from one chunk to the next, the whole table is sorted instead (same answers).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from policies.telemetry.mapped import release_pages

__all__ = ["history_warnings"]

_RELEASE_ROWS = 4_000_000  # drop mapped pages after this many rows (~240 MB of checks)

_H = 3_600_000


def _iso(ms: int) -> str:
    return str(np.datetime64(int(ms), "ms"))[:16].replace("T", " ")


def history_warnings(
    checks: pa.Table, *, max_down_h: float = 168.0, max_silent_h: float = 72.0, min_outages: int = 5
) -> list[dict]:
    """One dict per warning: ``rule``, ``service_id`` (None for the whole history) and ``message``."""
    if checks.num_rows == 0:
        return []
    streamed = _streamed(checks, max_down_h=max_down_h, max_silent_h=max_silent_h, min_outages=min_outages)
    if streamed is not None:
        return streamed
    return _whole_table(checks, max_down_h=max_down_h, max_silent_h=max_silent_h, min_outages=min_outages)


def _whole_table(checks: pa.Table, *, max_down_h: float, max_silent_h: float, min_outages: int) -> list[dict]:
    """The reference form: every check sorted by (service, time) at once."""
    ts = pc.cast(pc.cast(checks["ts"], pa.timestamp("ms", tz="UTC")), pa.int64()).to_numpy()
    svc = checks["service_id"].to_numpy(zero_copy_only=False).astype(str)
    down = (checks["status"].to_numpy(zero_copy_only=False).astype(str) == "down").astype(np.int8)
    order = np.lexsort((ts, svc))
    ts, svc, down = ts[order], svc[order], down[order]
    end = int(ts.max())
    out, outages = [], 0
    bounds = np.flatnonzero(np.r_[True, svc[1:] != svc[:-1], True])
    for a, b in zip(bounds[:-1], bounds[1:]):
        name, t, d = str(svc[a]), ts[a:b], down[a:b]
        starts = np.flatnonzero(np.diff(np.r_[0, d]) == 1)
        outages += starts.size
        for s in starts:
            up_after = np.flatnonzero(d[s:] == 0)
            until = int(t[s + up_after[0]]) if up_after.size else end
            if until - t[s] > max_down_h * _H:
                out.append(_down_long(name, int(t[s]), until, not up_after.size, max_down_h))
        gaps = np.diff(np.r_[t, end])
        worst = int(np.argmax(gaps))
        if gaps[worst] > max_silent_h * _H:
            out.append(_silent(name, int(gaps[worst]), int(t[worst]), worst == t.size - 1, max_silent_h))
    if outages < min_outages:
        out.append(_too_few(outages, bounds.size - 1, end - int(ts.min()), min_outages))
    return out


def _down_long(name: str, start: int, until: int, open_: bool, max_down_h: float) -> dict:
    tail = "until the data ends" if open_ else f"until {_iso(until)}"
    return _warn("down too long", name, f"down from {_iso(start)} {tail} "
                 f"({(until - start) / _H / 24:.1f} days > {max_down_h:g} h): probably retired or "
                 "misconfigured, not an outage to learn from")  # fmt: skip


def _silent(name: str, gap: int, at: int, last: bool, max_silent_h: float) -> dict:
    where = "after its last check" if last else f"from {_iso(at)}"
    why = "probably retired or misconfigured" if last else "monitoring paused or misconfigured then"
    return _warn("not checked too long", name, f"no check for {gap / _H / 24:.1f} days {where} "
                 f"(> {max_silent_h:g} h): {why}")  # fmt: skip


def _too_few(outages: int, services: int, span_ms: int, min_outages: int) -> dict:
    return _warn("too few outages", None, f"only {outages} outage(s) in {services} service(s) over "
                 f"{span_ms / _H / 24:.1f} days (fewer than {min_outages}): too few to learn a "
                 "failure model from")  # fmt: skip


def _streamed(checks: pa.Table, *, max_down_h: float, max_silent_h: float, min_outages: int) -> list[dict] | None:
    """Chunk by chunk with a state per service; None when a service's checks go back in time
    (or a key column has nulls, which the whole-table form reads as text)."""
    if any(checks[c].null_count for c in ("ts", "service_id")):
        return None
    names = pc.unique(checks["service_id"]).to_pylist()
    names = sorted(str(n) for n in names)
    value_set = pa.array(names, pa.string())
    release_pages()  # mapped day files (policies/telemetry/mapped.py): keep about one resident
    read = 0
    last_t: dict[int, int] = {}  # per service index: newest check, open down run's start, widest gap
    run_from: dict[int, int] = {}
    gap: dict[int, tuple[int, int]] = {}
    closed: dict[int, list[tuple[int, int]]] = {}
    outages, first, end = 0, None, None
    for batch in checks.to_batches():
        if batch.num_rows == 0:
            continue
        read += batch.num_rows
        if read > _RELEASE_ROWS:
            release_pages()
            read = 0
        ts = pc.cast(pc.cast(batch["ts"], pa.timestamp("ms", tz="UTC")), pa.int64()).to_numpy()
        idx = pc.index_in(pc.cast(batch["service_id"], pa.string()), value_set=value_set).to_numpy()
        down = pc.fill_null(pc.equal(pc.cast(batch["status"], pa.string()), "down"), False).to_numpy(
            zero_copy_only=False
        )
        order = np.lexsort((ts, idx))
        ts, idx, down = ts[order], idx[order], down[order].astype(np.int8)
        first = int(ts.min()) if first is None else min(first, int(ts.min()))
        end = int(ts.max()) if end is None else max(end, int(ts.max()))
        bounds = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1], True])
        for a, b in zip(bounds[:-1], bounds[1:]):
            j, t, d = int(idx[a]), ts[a:b], down[a:b]
            prev = last_t.get(j)
            if prev is not None and t[0] < prev:
                return None  # not in time order across chunks: sort the whole table
            step = np.diff(np.r_[1 if j in run_from else 0, d])  # +1: a down run starts; -1: its first up
            for i in np.flatnonzero(step):  # starts and ups alternate
                if step[i] == 1:
                    run_from[j] = int(t[i])
                    outages += 1
                else:
                    closed.setdefault(j, []).append((run_from.pop(j), int(t[i])))
            gaps = np.diff(t if prev is None else np.r_[prev, t])
            if gaps.size:
                w = int(np.argmax(gaps))
                at = int((t if prev is None else np.r_[prev, t])[w])
                if j not in gap or gaps[w] > gap[j][0]:
                    gap[j] = (int(gaps[w]), at)
            last_t[j] = int(t[-1])
    out = []
    for j, name in enumerate(names):
        if j not in last_t:
            continue
        runs = closed.get(j, []) + ([(run_from[j], end)] if j in run_from else [])
        for k, (start, until) in enumerate(runs):
            if until - start > max_down_h * _H:
                out.append(_down_long(name, start, until, j in run_from and k == len(runs) - 1, max_down_h))
        widest, at = gap.get(j, (-1, 0))
        final = end - last_t[j]
        if final > widest:
            widest, at, is_last = final, last_t[j], True
        else:
            is_last = False
        if widest > max_silent_h * _H:
            out.append(_silent(name, widest, at, is_last, max_silent_h))
    if outages < min_outages:
        out.append(_too_few(outages, len(last_t), end - first, min_outages))
    return out


def _warn(rule: str, service: str | None, message: str) -> dict:
    return {"level": "warning", "rule": rule, "service_id": service, "message": message}
