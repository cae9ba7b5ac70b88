"""``qres runbook``: the on-call page written from the published bundle and the recorded drills."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import ConfigOpt, StoreOpt, abs_path, fail, load_settings, out
from policies.errors import QresError

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    @app.command()
    def runbook(
        config: ConfigOpt = None,
        store: StoreOpt = None,
        out_file: Annotated[
            Path | None, typer.Option("--out", "-o", help="Markdown file to write (default <state_dir>/runbook.md).")
        ] = None,
        top: Annotated[int, typer.Option(help="How many of the likeliest outages to cover.")] = 10,
    ) -> None:
        """Write the on-call runbook from the published shedding bundle: per likely outage, what the policy does,
        what to watch, how to roll back, and the drill results that back it."""
        try:
            settings = load_settings(config, store_dir=abs_path(store))
            from policies.drill.runbook import render_runbook
            from tasks.drill.record import latest_records
            from tasks.drill.sources import published_bundle

            bundle = published_bundle(Path(settings.store_dir))
            info = {"version": bundle.version, **{k: bundle.manifest.get(k) for k in ("created_at", "mlflow_run_id")}}
            page = render_runbook(info, bundle.plans(), bundle.health, latest_records(settings.state_dir), top=top)
            path = (out_file or Path(settings.state_dir) / "runbook.md").absolute()
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(page, encoding="utf-8")
            tmp.replace(path)
        except (QresError, ValueError, OSError) as exc:
            fail(exc)
        out.print(f"runbook for shedding {bundle.version} written to {path}", highlight=False)
