"""Warning-level rules a real history needs: services that look retired, histories too quiet to learn from.

These never fail validation: the data is well-formed, it just says something a person should
hear before trusting a model of it.

- **down too long**: a service whose checks say ``down`` without a break for longer than
  ``max_down_h`` is "probably retired or misconfigured" (a site nobody removed from the
  monitor, a probe pointed at the wrong URL), not an outage to learn from.
- **not checked too long**: a service with no check for longer than ``max_silent_h`` (between
  two checks, or from its last check to the end of the table) probably stopped being monitored.
- **too few outages**: fewer than ``min_outages`` changes into ``down`` over all services.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["history_warnings"]

_H = 3_600_000


def _iso(ms: int) -> str:
    return str(np.datetime64(int(ms), "ms"))[:16].replace("T", " ")


def history_warnings(
    checks: pa.Table, *, max_down_h: float = 168.0, max_silent_h: float = 72.0, min_outages: int = 5
) -> list[dict]:
    """One dict per warning: ``rule``, ``service_id`` (None for the whole history) and ``message``."""
    if checks.num_rows == 0:
        return []
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
                tail = "until the data ends" if not up_after.size else f"until {_iso(until)}"
                out.append(_warn("down too long", name, f"down from {_iso(t[s])} {tail} "
                                 f"({(until - t[s]) / _H / 24:.1f} days > {max_down_h:g} h): probably retired or "
                                 "misconfigured, not an outage to learn from"))  # fmt: skip
        gaps = np.diff(np.r_[t, end])
        worst = int(np.argmax(gaps))
        if gaps[worst] > max_silent_h * _H:
            last = worst == t.size - 1
            where = "after its last check" if last else f"from {_iso(t[worst])}"
            why = "probably retired or misconfigured" if last else "monitoring paused or misconfigured then"
            out.append(_warn("not checked too long", name, f"no check for {gaps[worst] / _H / 24:.1f} days {where} "
                             f"(> {max_silent_h:g} h): {why}"))  # fmt: skip
    if outages < min_outages:
        out.append(_warn("too few outages", None, f"only {outages} outage(s) in {bounds.size - 1} service(s) over "
                         f"{(end - ts.min()) / _H / 24:.1f} days (fewer than {min_outages}): too few to learn a "
                         "failure model from"))  # fmt: skip
    return out


def _warn(rule: str, service: str | None, message: str) -> dict:
    return {"level": "warning", "rule": rule, "service_id": service, "message": message}
