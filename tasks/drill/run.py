"""Run a drill: per seed, start the system on loopback, play the fault plan under load, collect.

One seed = one system: four dependency stand-ins, the fault proxy in front of them, one drilled
service per policy (all behind the same proxy, so every policy lives through the same faults at
the same moments) and the load generator sending each of them the same invoices. Everything is
stopped by pid when the seed ends, also on error or Ctrl-C (``ProcessGroup``).
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from policies.drill.load import invoice_stream
from policies.drill.outcomes import drill_outcome, summarize_seeds
from policies.drill.system import ROLES, DrillSystem
from policies.drill.timeline import FaultPlan
from tasks.drill.procs import DrillProcessError, ProcessGroup

__all__ = ["DrillConfig", "run_drill", "run_seed", "DrillProcessError"]

WORK_MS = {"validation": 5.0, "payment": 5.0, "compute": 10.0, "standby": 25.0}  # the standby site is slower
START_S = 120.0  # generous: eight engineers share two cores
LEAD_S = 0.5  # between START and the first invoice, so every process has read it


@dataclass(frozen=True)
class DrillConfig:
    store: Path
    public_key: Path | None
    allow_unsigned: bool
    system: DrillSystem
    policies: tuple[str, ...]
    seeds: tuple[int, ...]
    window_s: float = 16.0
    rate_per_s: float = 8.0
    slots: int = 4
    service_cmd: str | None = None  # a team's own service (docs/drills.md); default: tasks.drill.service
    extra_env: dict[str, str] = field(default_factory=dict)


def _module(name: str, *args: object) -> list[str]:
    return [sys.executable, "-m", name, *map(str, args)]


def _events(path: Path, t0: float) -> list[dict]:
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [{**r, "t": round(r["t"] - t0, 3)} for r in rows]


def run_seed(cfg: DrillConfig, plan: FaultPlan, seed: int, work: Path) -> dict:
    """One seed of a drill; the figures per policy, the plan, the decisions and the event logs."""
    work.mkdir(parents=True, exist_ok=True)
    invoices = [i.as_dict() for i in invoice_stream(seed, plan.window_s, cfg.rate_per_s, cfg.system)]
    (work / "plan.json").write_text(json.dumps(plan.as_dict(), indent=1))
    (work / "invoices.json").write_text(json.dumps(invoices))
    max_s = plan.window_s + START_S + 60
    out = work / "results.json"
    with ProcessGroup(work / "logs") as group:
        for role in ROLES:
            group.start(
                f"dep-{role}", _module("tasks.drill.deps", "--role", role, "--work-ms", WORK_MS[role], "--max-s", max_s)
            )
        ports = {role: group.ready(f"dep-{role}", START_S) for role in ROLES}
        upstreams = [a for role in ROLES for a in ("--upstream", f"{role}={ports[role]}")]
        group.start(
            "proxy",
            _module("tasks.drill.proxy", "--plan", work / "plan.json", *upstreams, "--seed", seed, "--max-s", max_s),
        )
        fronts = dict(kv.split("=") for kv in group.ready("proxy", START_S).split(","))
        env = {
            "QRES_DRILL_DEPS": json.dumps({r: f"http://127.0.0.1:{p}" for r, p in fronts.items()}),
            "QRES_DRILL_ROLES": json.dumps(cfg.system.roles),
            "QRES_DRILL_WORKLOADS": json.dumps(list(cfg.system.workloads)),
            "QRES_DRILL_STORE": str(cfg.store),
            "QRES_DRILL_PUBLIC_KEY": str(cfg.public_key or ""),
            "QRES_DRILL_ALLOW_UNSIGNED": "1" if cfg.allow_unsigned else "0",
            "QRES_DRILL_SLOTS": str(cfg.slots),
            "QRES_DRILL_MAX_S": str(max_s),
            **cfg.extra_env,
        }
        argv = shlex.split(cfg.service_cmd) if cfg.service_cmd else _module("tasks.drill.service")
        for p in cfg.policies:
            events = work / f"events-{p}.jsonl"
            events.unlink(missing_ok=True)
            group.start(f"service-{p}", argv, env={**env, "QRES_DRILL_POLICY": p, "QRES_DRILL_EVENTS": str(events)})
        urls = {p: f"http://127.0.0.1:{group.ready(f'service-{p}', START_S)}" for p in cfg.policies}
        targets = [a for p, u in urls.items() for a in ("--target", f"{p}={u}")]
        group.start(
            "loadgen",
            _module(
                "tasks.drill.loadgen", "--invoices", work / "invoices.json", *targets, "--out", out, "--max-s", max_s
            ),
        )
        group.ready("loadgen", START_S)
        t0 = time.time() + LEAD_S
        group.send("proxy", f"START {t0!r}")
        group.send("loadgen", f"START {t0!r}")
        (work / "pids.json").write_text(json.dumps({name: p.pid for name, p in group.procs.items()}))
        if group.wait("loadgen", plan.window_s + START_S) != 0 or not out.exists():
            raise DrillProcessError(f"the load generator failed: see {work / 'logs' / 'loadgen.log'}")
    results = json.loads(out.read_text())
    events = {p: _events(work / f"events-{p}.jsonl", t0) for p in cfg.policies}
    outcomes = {p: drill_outcome(invoices, results[p], events[p], plan, cfg.system.priorities) for p in cfg.policies}
    decisions = {p: [e["key"] for e in events[p] if e["kind"] == "decision"] for p in cfg.policies}
    return {"seed": seed, "plan": plan.as_dict(), "outcomes": outcomes, "decisions": decisions, "events": events}


def run_drill(cfg: DrillConfig, faults: Callable[[int], FaultPlan], work: Path, progress=None) -> dict:
    """Every seed in turn (each on a fresh system), then the figures per policy across seeds."""
    per_seed = []
    for seed in cfg.seeds:
        if progress:
            progress(f"seed {seed}: starting {len(cfg.policies) + 6} processes")
        per_seed.append(run_seed(cfg, faults(seed), seed, work / f"seed-{seed}"))
    summary = {p: summarize_seeds([s["outcomes"][p] for s in per_seed]) for p in cfg.policies}
    return {
        "source": per_seed[0]["plan"]["source"],
        "policies": list(cfg.policies),
        "seeds": list(cfg.seeds),
        "rate_per_s": cfg.rate_per_s,
        "roles": cfg.system.roles,
        "per_seed": per_seed,
        "summary": summary,
    }
