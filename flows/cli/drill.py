"""``qres drill``: play an outage on a running system and compare the policies side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import (
    ConfigOpt,
    DataOpt,
    JsonOpt,
    QuietOpt,
    StoreOpt,
    abs_path,
    console,
    fail,
    load_settings,
    out,
)
from policies.errors import QresError

__all__ = ["register", "outcome_table"]

_DEFAULT_POLICIES = "keep-all,tiers,greedy,published"


def _fig(summary: dict, name: str, spec: str = ",.0f") -> str:
    f = summary.get(name)
    if f is None:
        return "-"
    if f["min"] == f["max"]:
        return format(f["mean"], spec)
    return f"{format(f['mean'], spec)} ({format(f['min'], spec)}..{format(f['max'], spec)})"


def outcome_table(result: dict):
    """The outcome table, one column per policy (means over seeds, the range across seeds in brackets)."""
    from rich.table import Table

    summary = {p: result["summary"][p] for p in result["policies"]}
    prios = sorted({p for s in summary.values() for p in s["sla_miss"]})
    table = Table(title=f"drill {result['source']} on shedding {result['bundle_version']}, seeds {result['seeds']}")
    table.add_column("figure")
    for policy in summary:
        table.add_column(policy, justify="right")
    rows = [
        ("MTTD s", "mttd_s", ".2f"),
        ("MTTSF s", "mttsf_s", ".2f"),
        ("invoices processed", "invoices_processed", ",.0f"),
        ("value processed", "value_processed", ",.0f"),
        ("value lost", "value_lost", ",.0f"),
        ("value shed (deferred)", "value_shed", ",.0f"),
        ("decisions changed", "decisions_changed", ",.0f"),
        ("KL normal/fallback", "kl_normal_fallback", ".3f"),
    ]
    for label, name, spec in rows:
        table.add_row(label, *[_fig(s, name, spec) for s in summary.values()])
    for p in prios:
        table.add_row(f"SLA missed {p}", *[f"{s['sla_miss'][p]:.0%}" for s in summary.values()])
    return table


def register(app: typer.Typer) -> None:
    @app.command()
    def drill(
        config: ConfigOpt = None,
        store: StoreOpt = None,
        data: DataOpt = None,
        scenario: Annotated[str | None, typer.Option(help="Play this published scenario (its key).")] = None,
        incident: Annotated[str | None, typer.Option(help="Play this incident from the telemetry's history.")] = None,
        down: Annotated[str | None, typer.Option(help="What-if: comma-separated dependencies to take down.")] = None,
        degraded: Annotated[str | None, typer.Option(help="What-if: comma-separated dependencies to degrade.")] = None,
        for_: Annotated[
            str | None,
            typer.Option("--for", help="What-if: how long the outage lasts (60s, 2m); default: the failure model."),
        ] = None,
        policies: Annotated[str, typer.Option(help="Policies to compare side by side.")] = _DEFAULT_POLICIES,
        seeds: Annotated[str, typer.Option(help="Comma-separated seeds; one drill per seed.")] = "1,2,3",
        duration: Annotated[
            float, typer.Option(help="Seconds of load per seed (longer when the outage needs it).")
        ] = 16.0,
        rate: Annotated[float, typer.Option(help="Invoices per second sent to each policy's service.")] = 8.0,
        roles: Annotated[
            str, typer.Option(help="Which bundle service each stand-in plays, e.g. validation=saas-x,compute=region-y.")
        ] = "",
        service_cmd: Annotated[
            str | None, typer.Option(help="Command that starts your own service instead of the worked example.")
        ] = None,
        work: Annotated[
            Path | None, typer.Option(help="Folder for plans, logs and results (default <state_dir>/drills/work).")
        ] = None,
        record: Annotated[bool, typer.Option(help="Log the drill to MLflow and <state_dir>/drills.")] = True,
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
    ) -> None:
        """Drill a fallback on real loopback processes: faults from a published scenario, an incident or a
        what-if, the same load on each policy, and the outcome table by policy (docs/drills.md)."""
        opts = {k: v for k, v in locals().items() if k not in ("config", "store", "data", "json_out", "quiet")}
        opts["work"] = abs_path(work)
        from flows.cli.versions import public_key_source

        try:
            settings = load_settings(config, data_dir=abs_path(data), store_dir=abs_path(store))
            from flows.drill import run_cli_drill

            say = None if quiet or json_out else (lambda msg: console.print(msg, highlight=False))
            result = run_cli_drill(settings, opts, public_key_source(settings), progress=say)
        except (QresError, ValueError) as exc:
            fail(exc)
        if json_out:
            slim = {k: v for k, v in result.items() if k != "per_seed"}
            slim["decisions"] = {s["seed"]: s["decisions"] for s in result["per_seed"]}
            out.print_json(json.dumps(slim, default=str))
            return
        out.print(outcome_table(result))
        if result.get("record"):
            out.print(f"recorded: {result['record']} (MLflow run {result['mlflow_run_id']})", highlight=False)
