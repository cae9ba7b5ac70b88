"""The solve stage alone at fleet scale: per family, problems built, distinct, solved, seconds.

    prlimit --as=10000000000 .venv/bin/python benchmarks/solve_scale.py --data .qres/bench/fleet/s250-d30-seed7
        [--limit N] [--families shedding,horizon,tiers,standby,routing] [--json FILE]

Why a script of its own: ``fleet_scale.py`` runs whole nightlies, where the solve of a large fleet
is one opaque stage. This one reads the sample (no validation: ``qres sample`` writes clean data)
one health-check day file at a time (its window grid and routing's latency pool, merged: the same
model and pool as from the whole table, without holding 86M rows at 1,000 services), fits the
failure model and builds the scenario set in-process with the settings of ``qres.toml``,
then builds and solves every family the way the nightly does (``tasks.solve.solve_problems``,
no cache, no Prefect), timing each step. ``--limit N`` solves only the first N distinct problems
of each family and extrapolates the solve seconds (marked ``~``), for fleets whose full solve
takes hours.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FAMILIES = ("shedding", "horizon", "tiers", "standby", "routing")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a `qres sample` folder")
    parser.add_argument("--limit", type=int, default=0, help="solve at most this many distinct problems per family")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--json", default=None, help="write every figure here")
    parser.add_argument("--compare-full", action="store_true", help="also solve the unrestricted horizon plans")
    parser.add_argument(
        "--horizon-dump", default=None, help="write each restricted horizon problem here (JSON) with a per-state table"
    )
    args = parser.parse_args()
    dump = Path(args.horizon_dump) if args.horizon_dump else None
    rows, info = run(Path(args.data), args.families.split(","), args.limit, args.compare_full, dump)
    print(
        f"# {info['services']} services, {info['workloads']} workloads, {info['scenarios']} scenarios {info['by_source']}"
    )
    print(f"# fit {info['fit_s']:.1f} s, scenarios {info['scenarios_s']:.1f} s")
    print("| family | problems | distinct | solved | build s | solve s | s per solved |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        approx = "~" if r["extrapolated"] else ""
        per = r["solve_s"] / r["solved"] if r["solved"] else 0.0
        print(
            f"| {r['family']} | {r['problems']} | {r['distinct']} | {r['solved']} | {r['build_s']:.1f} | "
            f"{approx}{r['solve_s_full']:.1f} | {per:.3f} |"
        )
    for r in rows:
        extra = {k: v for k, v in r.items() if k.startswith("restricted_") or k.startswith("gap_")}
        if extra:
            print(f"# {r['family']}: " + ", ".join(f"{k} {v:.4g}" for k, v in extra.items()))
    if args.json:
        Path(args.json).write_text(json.dumps({"info": info, "families": rows}, indent=2, default=str))


def run(
    data: Path, families: list[str], limit: int, compare_full: bool = False, dump: Path | None = None
) -> tuple[list[dict], dict]:
    from flows.params import anneal_params, model_params
    from flows.settings import load_settings
    from policies.model.failure_model import fit_failure_model
    from policies.scenarios.scenario_set import build_scenarios
    from policies.telemetry.ingest import conform_tables

    settings = load_settings(ROOT / "qres.toml")
    t0 = time.perf_counter()
    small = {p.stem: pq.read_table(p) for p in sorted(data.glob("*.parquet"))}
    tables = conform_tables(small)
    params = model_params(settings)
    grids, pool, rows = _stream_checks(sorted((data / "health_checks").glob("*.parquet")), params["window_min"])
    tables["health_checks"] = _RowCount(rows)  # the fit reads only its row count when the grids add up
    model = fit_failure_model(
        tables["services"], tables["dependencies"], tables["health_checks"], tables.get("incidents"),
        grids=grids, **params,
    )  # fmt: skip
    t1 = time.perf_counter()
    sc = settings.scenarios
    scenarios = build_scenarios(
        model,
        tables["dependencies"],
        target_mass=sc.target_mass,
        services=tables["services"],
        what_if=sc.what_if,
        single_outages=sc.single_outages,
        sample_max=sc.sample_max,
        sample_min_probability=sc.sample_min_probability,
        sample_params={"num_reads": sc.sample_num_reads, "num_sweeps": sc.sample_num_sweeps, "beta": sc.sample_beta},
        seed=settings.seed,
    )
    t2 = time.perf_counter()
    info = {
        "rows": rows,
        "services": tables["services"].num_rows,
        "workloads": tables["workloads"].num_rows,
        "scenarios": len(scenarios.scenarios),
        "by_source": scenarios.info["by_source"],
        "fit_s": t1 - t0,
        "scenarios_s": t2 - t1,
    }
    tables["routing_pool"] = pool
    fams = _families(settings, tables, model, scenarios, families, limit, anneal_params(settings), compare_full, dump)
    return list(fams), info


class _RowCount:
    def __init__(self, rows: int) -> None:
        self.num_rows = rows


def _stream_checks(files: list[Path], window_min: int):
    """(window grid per file, routing's latency pool, rows), one day file in memory at a time.

    The pool is :func:`policies.routing.policy.latency_pool` of the whole table: each service's
    kept latencies joined and sorted, and its down share from the down checks over all checks.
    """
    import numpy as np
    import pyarrow.compute as pc

    from policies.model.window_grid import window_grid
    from policies.routing.policy import latency_pool

    grids, lat, downs, counts, rows = [], {}, {}, {}, 0
    for f in files:
        table = pq.read_table(f)
        rows += table.num_rows
        grids.append(window_grid(table, window_min))
        n = pc.value_counts(table.column("service_id"))
        for sid, c in zip(n.field("values").to_pylist(), n.field("counts").to_pylist()):
            counts[sid] = counts.get(sid, 0) + c
        for sid, (kept, _) in latency_pool(table).items():
            lat.setdefault(sid, []).append(kept)
        d = pc.value_counts(table.filter(pc.equal(table.column("status"), "down")).column("service_id"))
        for sid, c in zip(d.field("values").to_pylist(), d.field("counts").to_pylist()):
            downs[sid] = downs.get(sid, 0) + c
        del table
    pool = {sid: (np.sort(np.concatenate(parts)), downs.get(sid, 0) / counts[sid]) for sid, parts in lat.items()}
    return grids, pool, rows


def _families(settings, tables, model, scenarios, families, limit, anneal, compare_full=False, dump=None):
    from policies.routing.policy import routing_documents
    from policies.shedding.anticipation import HorizonParams, build_horizon_problems
    from policies.shedding.horizon_restrict import restrict
    from policies.shedding.policy import build_shedding_problems
    from policies.standby.policy import build_standby_problem
    from policies.tiers.problem import tier_problem_from_shedding
    from tasks.solve import solve_problems
    from tasks.solve_families import routing_problems

    so, fam = settings.solve, settings.families
    sc = scenarios.scenarios
    t = time.perf_counter()
    shedding = build_shedding_problems(
        tables["services"], tables["dependencies"], tables["workloads"], sc, levels=so.levels
    )
    build_s = time.perf_counter() - t
    common = {"seed": settings.seed, "top_k": so.top_k}
    shed_results = None
    if "shedding" in families or "horizon" in families:
        row, shed_results = _solve(
            "shedding", shedding, build_s, limit, time_limit_s=so.time_limit_s, solvers=so.solvers, anneal=anneal,
            **common,
        )  # fmt: skip
        if "shedding" in families:
            yield row
    if "horizon" in families:
        if shed_results is None or len(shed_results) != len(shedding):  # limited: greedy's levels stand in
            shed_results = solve_problems("shedding", shedding, solvers=("greedy",), time_limit_s=1.0, **common)[0]
        t = time.perf_counter()
        static = {s.key: r.best.solution for s, r in zip(sc, shed_results, strict=True)}
        params = HorizonParams(steps=so.horizon_steps, hold_s=so.hold_s)
        hp = build_horizon_problems(model, sc, shedding, static, tables["workloads"], params)
        rs = [restrict(p, static[p.key]) for p in hp]  # as the nightly: each state over what it can change
        kw = {"time_limit_s": so.time_limit_s, "solvers": so.horizon_solvers, "anneal": anneal, **common}
        row, hr = _solve("horizon", [r.problem for r in rs], time.perf_counter() - t, limit, **kw)
        if dump is not None:
            _dump_horizon(dump, rs, hr)
        yield {**row, **_restriction_figures(rs, hr)}
        if compare_full:  # the unrestricted plans, and what the restriction lost against them
            full, fr = _solve("horizon", hp, 0.0, limit, label="horizon (full)", **kw)
            yield {**full, **_restriction_gap(rs, hr, fr)}
    if "tiers" in families:
        t = time.perf_counter()
        p = tier_problem_from_shedding(
            shedding, [s.probability for s in sc], tiers=fam.tiers, alpha=fam.tier_alpha, lam=fam.tier_lambda
        )
        yield _solve("tiers", [p], time.perf_counter() - t, limit, time_limit_s=fam.time_limit_s, **common)[0]
    if "standby" in families:
        t = time.perf_counter()
        p, _ = build_standby_problem(
            tables["services"], tables["workloads"], tables["sites"], tables["standby_candidates"], sc
        )
        yield _solve(
            "standby", [p], time.perf_counter() - t, limit, time_limit_s=fam.time_limit_s,
            solvers=fam.standby_solvers, anneal=anneal, **common,
        )[0]  # fmt: skip
    if "routing" in families:
        pool = tables["routing_pool"]  # streamed with the grids
        t = time.perf_counter()
        options = {"num_samples": fam.routing_samples, "sla_ms": fam.routing_sla_ms, "alpha": fam.routing_alpha}
        docs = routing_documents(
            tables["services"], tables["dependencies"], tables["workloads"], None, sc, seed=settings.seed,
            pool=pool, restrict=True, **options,
        )  # fmt: skip
        problems = routing_problems([d for d in docs if d["services"]])  # as the nightly: touched services only
        row = _solve("routing", problems, time.perf_counter() - t, limit, time_limit_s=fam.time_limit_s, **common)[0]
        yield row


def _solve(name, problems, build_s, limit, label=None, **params):
    from policies.solve.digest import problem_groups
    from tasks.solve import solve_problems

    groups = problem_groups(problems)
    todo = problems if not limit else [problems[g[0]] for g in groups[:limit]]
    t = time.perf_counter()
    results, solved = solve_problems(name, todo, **params)
    solve_s = time.perf_counter() - t
    extrapolated = bool(limit) and len(groups) > limit
    full = solve_s * len(groups) / max(solved, 1) if extrapolated else solve_s
    row = {
        "family": label or name,
        "problems": len(problems),
        "distinct": len(groups),
        "solved": solved,
        "build_s": build_s,
        "solve_s": solve_s,
        "solve_s_full": full,
        "extrapolated": extrapolated,
    }
    return row, results


def _dump_horizon(out: Path, rs, results) -> None:
    """Each restricted state's problem as JSON, and its size and CP-SAT search per line (``states.tsv``):
    to reproduce one slow plan in isolation (``benchmarks/horizon_state.py``)."""
    from policies.shedding.horizon import horizon_problem_to_dict

    out.mkdir(parents=True, exist_ok=True)
    lines = ["key\tworkloads\tfree\tpairs\tcpsat_status\tstopped_by\tdeterministic\tcpsat_s\tfile"]
    for i, (r, res) in enumerate(zip(rs, results)):
        name = f"state{i:04d}.json"
        (out / name).write_text(json.dumps(horizon_problem_to_dict(r.problem)))
        c = next((c for c in res.candidates if c.info.solver == "cpsat"), None)
        e = c.info.extra if c is not None else {}
        lines.append(
            f"{r.full.key}\t{len(r.full.base.workload_ids)}\t{r.free.size}\t{r.problem.pairs[0].size}\t"
            f"{e.get('cp_status', '-')}\t{e.get('stopped_by')}\t{e.get('deterministic_time', 0.0):.4f}\t"
            f"{c.info.time_s if c is not None else 0.0:.2f}\t{name}"
        )
    (out / "states.tsv").write_text("\n".join(lines) + "\n")


def _restriction_figures(rs, results) -> dict:
    """How small the restricted plans are, and how many meet the exactness condition."""
    from policies.shedding.horizon_restrict import is_exact

    sizes = [len(r.problem.base.workload_ids) for r in rs]
    full = [len(r.full.base.workload_ids) for r in rs]
    exact = [is_exact(r, res.best.solution) for r, res in zip(rs, results)]
    return {
        "restricted_workloads_mean": sum(sizes) / max(len(sizes), 1),
        "restricted_workloads_max": max(sizes, default=0),
        "restricted_full_workloads": max(full, default=0),
        "restricted_exact_states": sum(exact),
        "restricted_states": len(exact),
    }


def _restriction_gap(rs, hr, fr) -> dict:
    """The full problems' objective of the restricted plans (the live rule's when better) against the full solve."""
    from policies.shedding.horizon_restrict import full_solution

    gaps = []
    for r, a, b in zip(rs, hr, fr):
        if not (a.candidates and b.candidates):
            continue
        _, _, got, _ = full_solution(r, a.best.solution, a.chosen)
        gaps.append((b.best.objective - got) / max(abs(b.best.objective), 1e-9))
    return {
        "gap_states_worse": sum(g > 1e-9 for g in gaps),
        "gap_max_relative": max(gaps, default=0.0),
        "gap_mean_relative": sum(gaps) / max(len(gaps), 1),
    }


if __name__ == "__main__":
    main()
