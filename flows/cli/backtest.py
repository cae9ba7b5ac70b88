"""``qres backtest``: replay held-out incidents against the published policy, baselines and the oracle."""

from __future__ import annotations

import json
import tempfile
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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

if TYPE_CHECKING:
    from rich.console import Console

    from flows.settings import Settings
from policies.errors import QresError

__all__ = [
    "register",
    "load_backtest_tables",
    "compute_backtest",
    "render_backtest",
    "OverlayOpt",
    "overlay_source",
    "VersionOpt",
    "progress_bars",
]

OverlayOpt = Annotated[
    str | None,
    typer.Option(
        "--overlay",
        help="Lay a topology over --data's outage timeline: a named overlay (dsb-social, dsb-hotel, trainticket, "
        "sample; real sites mapped in sha256 order onto its zones, then its data stores) or a data folder (sites "
        "that fail most onto its regions first); see docs/backtest.md.",
    ),
]
VersionOpt = Annotated[
    str | None,
    typer.Option(
        "--version",
        help="Backtest this published shedding bundle (e.g. v000003) instead of a policy fitted on the past.",
    ),
]


def overlay_source(overlay: str | None) -> str | None:
    """A named overlay as given (unless a path of that name exists), any other one as an absolute path."""
    from policies.backtest.overlay import OVERLAY_NAMES

    if overlay in OVERLAY_NAMES and not Path(overlay).exists():
        return overlay
    return abs_path(overlay)


def load_backtest_tables(source: str, overlay: str | None) -> tuple[dict, dict | None]:
    """Tables of ``source`` (an Upptime ``commits.jsonl``/``.bundle`` is imported first), with ``overlay`` laid over."""
    from policies.telemetry.ingest import conform_tables, load_telemetry

    path = Path(source)
    if "://" not in source and path.is_file() and (path.name.endswith(".jsonl") or path.suffix == ".bundle"):
        from policies.telemetry.importers.upptime import import_upptime

        with tempfile.TemporaryDirectory(prefix="qres-backtest-") as tmp:
            import_upptime(path, Path(tmp) / "data")
            tables = conform_tables(load_telemetry(str(Path(tmp) / "data")).tables)
    else:
        tables = conform_tables(load_telemetry(source).tables)
    if overlay is None:
        return tables, None
    from policies.backtest.overlay import OVERLAY_NAMES, load_overlay, overlay_timeline

    if overlay in OVERLAY_NAMES and not Path(overlay).exists():
        return overlay_timeline(tables, *load_overlay(overlay))
    return overlay_timeline(tables, conform_tables(load_telemetry(overlay).tables))


def compute_backtest(
    settings: Settings, *, overlay: str | None = None, version: str | None = None, progress=None, refuse: bool = True
) -> dict:
    """Load, optionally overlay, and backtest; the result carries ``mapping`` and ``data``.

    ``refuse``: raise NothingToLearnError on an empty question (else it is in ``result["refused"]``).
    """
    from policies.backtest.run import run_backtest

    tables, mapping = load_backtest_tables(str(settings.data_dir), overlay)
    decisions = fallback_bytes = None
    if version is not None:
        from qres_client.bundle import DECISIONS_FILE, FALLBACK_FILE, verify_bundle

        folder = Path(settings.store_dir) / "shedding" / version
        if not folder.is_dir():
            raise QresError(f"no shedding bundle {version!r} in {settings.store_dir}; see `qres versions`")
        verify_bundle(folder)
        decisions = (folder / DECISIONS_FILE).read_bytes()
        fallback = folder / FALLBACK_FILE  # absent in bundles published before it: the old rule
        fallback_bytes = fallback.read_bytes() if fallback.is_file() else None
    result = run_backtest(
        tables,
        replace(_backtest_config(settings), refuse_empty=refuse),
        decisions=decisions,
        version=version,
        progress=progress,
        fallback=fallback_bytes,
    )
    result.update({"data": str(settings.data_dir), "overlay": overlay, "mapping": mapping})
    return result


def _pct(x) -> str:
    return "-" if x is None else f"{x:.2%}"


def _verdict(g: dict) -> str:
    """The goals in words: published against live greedy, the share of the oracle, CVaR against tiers."""
    half = g.get("half_of_greedy_met")
    return (
        f"published avoidable loss ≤ 50% of greedy's (total and CVaR): "
        f"{'met' if half else 'NOT met' if half is False else 'n/a'}"
        + (
            f" (measured {g['avoidable_loss_vs_greedy']:.0%} / {g['avoidable_cvar_vs_greedy']:.0%})"
            if g.get("avoidable_loss_vs_greedy") is not None and g.get("avoidable_cvar_vs_greedy") is not None
            else ""
        )
        + "\n"
        f"share goal ≥ {g['share']:.0%}: {'met' if g['share_met'] else 'NOT met'}; "
        f"CVaR ≤ {g['cvar_ratio']:.0%} of tiers: {'met' if g['cvar_met'] else 'NOT met' if g['cvar_met'] is False else 'n/a'}"
        + (f" (measured {g['cvar_ratio_measured']:.0%})" if g.get("cvar_ratio_measured") is not None else "")
    )


def _standby_line(result: dict) -> str:
    """The standby placement published holds, what it cost and what it served (empty: none)."""
    sb, pub = result.get("standby"), result["overall"].get("published") or {}
    if not sb:
        return ""
    return (
        f"\nstandby: {len(sb['placed'])} warm copies at {sb['cost_per_h']:,.2f}/h; in the incidents they served "
        f"{pub.get('standby_value', 0.0):,.0f} and cost {pub.get('standby_cost', 0.0):,.0f} "
        f"(kept warm over the whole test period: {sb['test_period_cost']:,.0f})"
    )


def render_backtest(result: dict, console_: Console) -> None:
    """A table of the overall figures per policy and a one-panel summary."""
    from rich.panel import Panel
    from rich.table import Table

    t = Table(
        title=f"backtest: {result['n_incidents']} held-out incidents after {result['split_at']} "
        f"({result['n_impacting']} cost value), detection delay {result['delay_min']} min, "
        f"greedy_dwell holds {result['dwell_min']} min",
        title_justify="left",
    )
    for col in (
        "policy",
        "value kept vs oracle",
        "loss",
        "avoidable loss",
        f"avoidable CVaR{result['alpha']:.0%}",
        "recovered vs keep-all",
        "switching cost",
        "decision changes",
        "MTTSF (median min)",
        "min-share violations (min)",
    ):
        t.add_column(col, justify="left" if col == "policy" else "right")
    for name, o in result["overall"].items():
        t.add_row(
            name,
            _pct(o["share"]),
            f"{o['loss']:,.0f}",
            f"{o['avoidable_loss']:,.0f}",
            f"{o['avoidable_cvar']:,.0f}",
            _pct(o["recovered"]),
            f"{o['switch_cost']:,.0f}",
            f"{o['decision_changes']:,}",
            "-" if o["switch_min_median"] is None else f"{o['switch_min_median']:.0f}",
            f"{o['min_share_violation_min']:,}",
        )
    console_.print(t)
    verdict = _verdict(result["goal"])
    console_.print(
        Panel(
            f"data {result['data']}"
            + (f" with overlay {result['overlay']}" if result.get("overlay") else "")
            + f"\npolicy {result['version']}; published decisions matched exactly for "
            f"{_pct(result['published_exact_share'])} of the observed states\n{verdict}" + _standby_line(result),
            title="qres backtest",
            expand=False,
        )
    )


@contextmanager
def progress_bars(*, enabled: bool):
    """Yield a ``report(step, done, total)`` callback drawing one rich bar per step (no-op when disabled)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console.get(),
        disable=not enabled or not console.is_terminal,
    ) as bars:
        ids: dict[str, int] = {}

        def report(step: str, done: int, total: int) -> None:
            if step not in ids:
                ids[step] = bars.add_task(step, total=total)
            bars.update(ids[step], completed=done, total=total)

        yield report


def _json_ready(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "train"}


def register(app: typer.Typer) -> None:
    @app.command()
    def backtest(
        config: ConfigOpt = None,
        data: DataOpt = None,
        store: StoreOpt = None,
        overlay: OverlayOpt = None,
        version: VersionOpt = None,
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
    ) -> None:
        """Replay held-out incidents (time split) against the published policy, keep-all (first come, first
        served), static criticality tiers, live greedy (with and without a dwell) and the hindsight oracle,
        all paying the same switching costs. Exit code 4: nothing to replay or capacity never binds."""
        try:
            settings = load_settings(config, data_dir=abs_path(data), store_dir=abs_path(store))
            with progress_bars(enabled=not quiet and not json_out) as report:
                result = compute_backtest(settings, overlay=overlay_source(overlay), version=version, progress=report)
        except (QresError, ValueError) as exc:
            fail(exc)
        if json_out:
            out.print_json(json.dumps(_json_ready(result), default=str))
        elif not quiet:
            render_backtest(result, out)
        else:
            o = result["overall"].get("published") or {}
            out.print(
                f"published keeps {_pct(o.get('share'))} of the oracle's value over {result['n_incidents']} incidents"
            )


def _backtest_config(settings: Settings):
    from flows.params import backtest_config

    return backtest_config(settings)
