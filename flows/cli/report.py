"""``qres report``: one self-contained HTML page of the failure model, scenarios, policy, solvers and backtest."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.backtest import OverlayOpt, VersionOpt, compute_backtest, overlay_source, progress_bars
from flows.cli.common import ConfigOpt, DataOpt, JsonOpt, QuietOpt, StoreOpt, abs_path, fail, load_settings, out
from policies.errors import QresError

__all__ = ["register", "write_report"]


def write_report(result: dict, out_file: Path, **parts) -> Path:
    """Render ``result`` and write it atomically (temp file, then rename) to ``out_file``."""
    from tasks.report import render_report

    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(f".{out_file.name}.tmp")
    tmp.write_text(render_report(result, **parts), encoding="utf-8")
    tmp.replace(out_file)
    return out_file


def register(app: typer.Typer) -> None:
    @app.command()
    def report(
        config: ConfigOpt = None,
        data: DataOpt = None,
        store: StoreOpt = None,
        overlay: OverlayOpt = None,
        version: VersionOpt = None,
        out_file: Annotated[
            Path | None,
            typer.Option(
                "--out", "-o", help="HTML file to write (default <state_dir>/reports/report-<UTC time>.html)."
            ),
        ] = None,
        open_: Annotated[bool, typer.Option("--open", help="Open the page in a browser.")] = False,
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
    ) -> None:
        """Write one self-contained HTML report: failure model, scenario coverage, the policy, solvers and the
        backtest against the baselines."""
        try:
            settings = load_settings(config, data_dir=abs_path(data), store_dir=abs_path(store))
            with progress_bars(enabled=not quiet and not json_out) as progress:
                result = compute_backtest(
                    settings, overlay=overlay_source(overlay), version=version, progress=progress, refuse=False
                )
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            path = write_report(
                result, (out_file or Path(settings.state_dir) / "reports" / f"report-{stamp}.html").absolute()
            )
        except (QresError, ValueError) as exc:
            fail(exc)
        if json_out:
            out.print_json(data={"report": str(path), "incidents": result["n_incidents"], "goal": result["goal"]})
        else:
            out.print(f"report written to {path}", highlight=False)
        if open_:
            import webbrowser

            webbrowser.open(path.as_uri())
