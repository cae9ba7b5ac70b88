"""``qres model``: inspect the failure model and the scenario set a data source leads to."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from flows.cli.common import ConfigOpt, DataOpt, JsonOpt, abs_path, console, fail, load_settings, out
from policies.errors import QresError

__all__ = ["register", "model_report"]


def model_report(settings, *, top: int = 10) -> dict:
    """Fit the model and build the scenarios exactly as the nightly flow does; return a JSON-able report."""
    from flows.params import model_params
    from policies.model.failure_model import fit_failure_model
    from policies.scenarios.scenario_set import build_scenarios
    from policies.telemetry.ingest import conform_tables, load_telemetry

    tables = conform_tables(load_telemetry(settings.data_dir).tables)
    sc = settings.scenarios
    model = fit_failure_model(
        tables["services"],
        tables["dependencies"],
        tables["health_checks"],
        tables.get("incidents"),
        **model_params(settings),
    )
    from policies.model.guards import outage_warnings, require_outages
    from policies.telemetry.history_checks import history_warnings

    require_outages(model)
    scenarios = build_scenarios(
        model,
        tables["dependencies"],
        target_mass=sc.target_mass,
        services=tables["services"],
        seed=settings.seed,
        sample_max=sc.sample_max,
        sample_min_probability=sc.sample_min_probability,
        sample_params={"num_reads": sc.sample_num_reads, "num_sweeps": sc.sample_num_sweeps, "beta": sc.sample_beta},
        what_if=[w.model_dump() for w in sc.what_if],
        single_outages=sc.single_outages,
    )
    warnings = outage_warnings(model) + [
        f"{w['service_id']}: {w['message']}"
        for w in history_warnings(
            tables["health_checks"],
            max_down_h=settings.ingest.warn_down_h,
            max_silent_h=settings.ingest.warn_silent_h,
        )
        if w["rule"] != "too few outages"  # said once, by outage_warnings
    ]
    return _report(settings, model, scenarios, top, warnings)


def _report(settings, model, scenarios, top: int, warnings: list[str]) -> dict:
    co = model.co_failure.sort_values(
        ["significant", "lift", "a", "b"], ascending=[False, False, True, True], kind="mergesort"
    ).head(top)
    return {
        "data": str(settings.data_dir),
        "start": model.start.isoformat(),
        "end": model.end.isoformat(),
        "info": {k: list(v) if isinstance(v, tuple) else v for k, v in model.info.items()},
        "warnings": warnings,
        "dependencies": json.loads(model.per_dependency.to_json(orient="records")),
        "co_failure": json.loads(co.to_json(orient="records")),
        "scenarios": [
            {
                "key": s.key,
                "down": list(s.down),
                "degraded": list(s.degraded),
                "effective_down": list(s.effective_down),
                "probability": s.probability,
                "expected_duration_min": s.expected_duration_min,
                "source": s.source,
                "capacity_left": dict(s.capacity_left),
            }
            for s in scenarios.scenarios
        ],
        "coverage": {
            "target_mass": scenarios.target_mass,
            "covered_mass": scenarios.covered_mass,
            "sampled_mass": scenarios.info["sampled_mass"],
            "by_source": scenarios.info["by_source"],
        },
    }


def _render(report: dict) -> None:
    info = report["info"]
    out.print(
        f"[bold]{report['data']}[/]: {info['rows']:,} checks, {info['windows']:,} windows "
        f"({report['start']} .. {report['end']}); flap filter removed {info['transitions_removed']:,} of "
        f"{info['raw_transitions']:,} raw state changes (k={info['hysteresis_windows']}, {info['agreement']})"
    )
    from rich.table import Table

    deps = Table(title="per dependency (95% intervals from episodes)", title_justify="left")
    for col in ("dependency", "P(down)", "interval", "P(degraded)", "outages/day", "TTR p50/p90/p99 min"):
        deps.add_column(col, justify="left" if col == "dependency" else "right")
    rows = sorted(report["dependencies"], key=lambda r: (-r["p_down"], r["service_id"]))
    for r in rows:
        ttr = "/".join("-" if r[k] is None else f"{r[k]:.0f}" for k in ("ttr_p50_min", "ttr_p90_min", "ttr_p99_min"))
        deps.add_row(
            r["service_id"],
            f"{r['p_down']:.4%}",
            f"{r['p_down_lo']:.4%} .. {r['p_down_hi']:.4%}",
            f"{r['p_degraded']:.4%}",
            f"{r['outage_rate_per_day']:.2f}",
            ttr,
        )
    out.print(deps)
    pairs = Table(title="top co-failure pairs", title_justify="left")
    for col in ("a", "b", "joint windows", "joint episodes", "expected", "lift", "significant", "graph"):
        pairs.add_column(col)
    for r in report["co_failure"]:
        pairs.add_row(
            r["a"],
            r["b"],
            str(r["windows_joint"]),
            str(r["episodes_joint"]),
            f"{r['expected_episodes']:.3g}",
            "-" if r["lift"] is None else f"{r['lift']:.1f}",
            "yes" if r["significant"] else "no",
            "linked" if r["graph_linked"] else "",
        )
    out.print(pairs)
    scen = Table(title="scenarios", title_justify="left")
    for col in ("scenario", "source", "probability", "duration min", "capacity left"):
        scen.add_column(col)
    for s in report["scenarios"]:
        scen.add_row(
            s["key"],
            s["source"],
            f"{s['probability']:.3g}",
            f"{s['expected_duration_min']:.0f}",
            f"{sum(s['capacity_left'].values()):,.0f}" if s["capacity_left"] else "",
        )
    out.print(scen)
    c = report["coverage"]
    out.print(
        f"empirical scenarios cover {c['covered_mass']:.4%} of the probability mass (target "
        f"{c['target_mass']:.2%}); sampled multi-failures add {c['sampled_mass']:.3g}; by source {c['by_source']}"
    )


def register(app: typer.Typer) -> None:
    @app.command()
    def model(
        config: ConfigOpt = None,
        data: DataOpt = None,
        json_out: JsonOpt = False,
        top: Annotated[int, typer.Option(help="Co-failure pairs to show.")] = 10,
    ) -> None:
        """Fit the failure model on a data source and show per-dependency estimates, the top
        co-failure pairs and the scenario set with probabilities and coverage."""
        try:
            settings = load_settings(config, data_dir=abs_path(data))
            report = model_report(settings, top=top)
        except (QresError, ValueError) as exc:
            fail(exc)
        for warning in report["warnings"]:
            console.print(f"[yellow]warning:[/] {warning}", highlight=False)
        if json_out:
            out.print_json(json.dumps(report, default=str))
        else:
            _render(report)
