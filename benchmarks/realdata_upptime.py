"""The failure model on real Upptime status histories (../shared/realdata/upptime/<name>).

    .venv/bin/python benchmarks/realdata_upptime.py [manticore honch] [--window-min 5]

A small loader for this analysis only (the proper importer is ``policies/telemetry/importers``, issue 3):
``commits.jsonl`` is an event log of status changes, one commit per change, with the changed
``history/<site>.yml`` files. Each change becomes one check at the commit's time; the fit carries
every state forward until the next change (its gap rule), which is exactly Upptime's meaning.
Upptime already debounces, so hysteresis is off (``hysteresis_windows=1``). The data is read
in place and never copied into the repository.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policies.model.failure_model import fit_failure_model
from policies.scenarios.scenario_set import build_scenarios
from policies.schema import DEPENDENCIES, HEALTH_CHECKS, SERVICES

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "upptime"

__all__ = ["load_upptime", "REALDATA"]


def load_upptime(folder: Path) -> dict[str, pa.Table]:
    """services, dependencies (none known) and health_checks from an Upptime ``commits.jsonl``."""
    rows = []
    with open(folder / "commits.jsonl", encoding="utf-8") as f:
        for line in f:
            commit = json.loads(line)
            ts = pd.Timestamp(commit["author_time"]).tz_convert("UTC")
            for path, text in (commit.get("files") or {}).items():
                if not path.startswith("history/") or not path.endswith(".yml") or text is None:
                    continue
                fields = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
                status = fields.get("status", "").strip()
                if status in ("up", "down", "degraded"):
                    rows.append(
                        {
                            "ts": ts,
                            "service_id": Path(path).stem,
                            "probe": "upptime",
                            "status": status,
                            "latency_ms": None,
                            "error_rate": None,
                            "http_code": None,
                        }
                    )
    checks = pa.Table.from_pylist(rows, schema=HEALTH_CHECKS)
    sites = sorted({r["service_id"] for r in rows})
    services = pa.Table.from_pylist(
        [{"service_id": s, "kind": "saas", "tier": 1, "capacity": 1.0, "region": None} for s in sites], schema=SERVICES
    )
    return {"services": services, "dependencies": DEPENDENCIES.empty_table(), "health_checks": checks}


def analyse(name: str, window_min: int) -> dict:
    t = load_upptime(REALDATA / name)
    m = fit_failure_model(
        t["services"], t["dependencies"], t["health_checks"], window_min=window_min, hysteresis_windows=1
    )
    s = build_scenarios(m, t["dependencies"], dependency_ids=m.services, sample_max=8, seed=7)
    per = m.per_dependency
    co = m.co_failure
    return {"name": name, "model": m, "scenarios": s, "per": per[per["outages"] > 0], "co": co}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=["manticore", "honch"])
    parser.add_argument("--window-min", type=int, default=5)
    args = parser.parse_args()
    pd.set_option("display.width", 200)
    for name in args.names:
        r = analyse(name, args.window_min)
        m, s = r["model"], r["scenarios"]
        print(
            f"== {name}: {m.info['rows']} status changes, {len(m.services)} sites, {m.info['windows']} windows of "
            f"{m.window_min} min ({m.start} .. {m.end})"
        )
        cols = [
            "service_id",
            "outages",
            "p_down",
            "p_down_lo",
            "p_down_hi",
            "p_down_window_lo",
            "p_down_window_hi",
            "ttr_p50_min",
            "ttr_p90_min",
        ]
        print(r["per"][cols].sort_values("p_down", ascending=False).to_string(index=False, float_format="%.4g"))
        co = r["co"]
        print(f"co-failing pairs: {len(co)}, significant: {int(co['significant'].sum())}")
        print(
            co[co["significant"]][["a", "b", "windows_joint", "episodes_joint", "expected_episodes", "lift"]].to_string(
                index=False, float_format="%.3g"
            )
        )
        print(f"scenarios: {len(s.scenarios)} {s.info['by_source']}, empirical mass {s.covered_mass:.4%}")
        for sc in s.scenarios[:8]:
            print(f"  {sc.probability:.4g}  {sc.expected_duration_min:7.1f} min  {sc.source:9s} {sc.key}")


if __name__ == "__main__":
    main()
