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
    (or a key column has nulls, which the whole-table form reads as text).

    Each chunk is handled for all its services at once (numpy over the rows sorted by service
    and time): a loop per service and chunk cost services x chunks Python steps, which made
    the cost per row grow with the fleet (0.08 us a row at 250 services, 0.33 at 1,000).
    """
    if any(checks[c].null_count for c in ("ts", "service_id")):
        return None
    names = sorted(str(n) for n in pc.unique(checks["service_id"]).to_pylist())
    value_set = pa.array(names, pa.string())
    state = _State(len(names))
    release_pages()  # mapped day files (policies/telemetry/mapped.py): keep about one resident
    read = 0
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
        if not state.add(ts[order], idx[order], down[order].astype(np.int8), max_down_h * _H):
            return None  # not in time order across chunks: sort the whole table
    return state.warnings(names, max_down_h=max_down_h, max_silent_h=max_silent_h, min_outages=min_outages)


class _State:
    """Per service: newest check, open down run, widest gap; closed down runs that were too long."""

    def __init__(self, n: int) -> None:
        self.seen = np.zeros(n, bool)
        self.last_t = np.zeros(n, np.int64)
        self.in_run = np.zeros(n, bool)
        self.run_from = np.zeros(n, np.int64)
        self.gap = np.full(n, -1, np.int64)  # -1: no gap yet (a single check)
        self.gap_at = np.zeros(n, np.int64)
        self.long_runs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.outages, self.first, self.end = 0, None, None

    def add(self, ts: np.ndarray, idx: np.ndarray, down: np.ndarray, limit: float) -> bool:
        """One chunk sorted by (service, time); False when a service goes back in time."""
        rows = np.arange(ts.size)
        head = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])  # each service's first row
        tail = np.r_[head[1:], ts.size] - 1
        svc, known = idx[head], self.seen[idx[head]]
        if np.any(known & (ts[head] < self.last_t[svc])):
            return False
        self.first = int(ts.min()) if self.first is None else min(self.first, int(ts.min()))
        self.end = int(ts.max()) if self.end is None else max(self.end, int(ts.max()))
        group = np.repeat(np.arange(head.size), tail - head + 1)  # each row's service group
        # Down runs: +1 where one starts, -1 at its first up; a run may be open from the last chunk.
        prev = np.r_[0, down[:-1]].astype(np.int8)
        prev[head] = self.in_run[svc]
        step = down - prev
        changes = np.flatnonzero(step)
        self.outages += int(np.count_nonzero(step == 1))
        ends = changes[step[changes] == -1]
        if ends.size:  # starts and ups alternate: an up's start is the change before it, or the open run
            before = changes[np.maximum(np.searchsorted(changes, ends) - 1, 0)]
            inside = (before < ends) & (group[before] == group[ends])
            start = np.where(inside, ts[before], self.run_from[idx[ends]])
            longer = ts[ends] - start > limit
            self.long_runs.append((idx[ends][longer], start[longer], ts[ends][longer]))
        if changes.size:
            last = changes[np.r_[group[changes][1:] != group[changes][:-1], True]]
            opened = step[last] == 1
            self.in_run[idx[last]] = opened
            self.run_from[idx[last][opened]] = ts[last][opened]
        # Gaps: each check against the one before it (the service's newest, for its first row).
        earlier = np.r_[0, ts[:-1]]
        earlier[head] = self.last_t[svc]
        gaps = ts - earlier
        gaps[head[~known]] = -1  # a service's very first check closes no gap
        widest = np.maximum.reduceat(gaps, head)
        at = np.minimum.reduceat(np.where(gaps == widest[group], rows, ts.size), head)  # first widest
        better = widest > self.gap[svc]
        self.gap[svc[better]] = widest[better]
        self.gap_at[svc[better]] = earlier[at[better]]
        self.last_t[svc] = ts[tail]
        self.seen[svc] = True
        return True

    def warnings(self, names: list[str], *, max_down_h: float, max_silent_h: float, min_outages: int) -> list[dict]:
        runs: dict[int, list[tuple[int, int]]] = {}
        if self.long_runs:
            j, start, until = (np.concatenate(a) for a in zip(*self.long_runs))
            for k in np.argsort(j, kind="stable"):  # chunks in time order: each service's runs stay in order
                runs.setdefault(int(j[k]), []).append((int(start[k]), int(until[k])))
        out, end = [], int(self.end)
        for j in np.flatnonzero(self.seen).tolist():
            name, mine = names[j], runs.get(j, [])
            if self.in_run[j]:
                mine.append((int(self.run_from[j]), end))
            for k, (start, until) in enumerate(mine):
                if until - start > max_down_h * _H:
                    out.append(_down_long(name, start, until, bool(self.in_run[j]) and k == len(mine) - 1, max_down_h))
            widest, at, last = int(self.gap[j]), int(self.gap_at[j]), int(self.last_t[j])
            is_last = end - last > widest
            if is_last:
                widest, at = end - last, last
            if widest > max_silent_h * _H:
                out.append(_silent(name, widest, at, is_last, max_silent_h))
        if self.outages < min_outages:
            out.append(_too_few(self.outages, int(self.seen.sum()), end - int(self.first), min_outages))
        return out


def _warn(rule: str, service: str | None, message: str) -> dict:
    return {"level": "warning", "rule": rule, "service_id": service, "message": message}
