"""`qres serve`: the decision service (qres_client.serve) on this project's store and keys."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli.common import ConfigOpt, StoreOpt, abs_path, load_settings
from flows.cli.versions import public_key_source

__all__ = ["register"]


def serve(
    config: ConfigOpt = None,
    store: StoreOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    refresh_s: Annotated[float, typer.Option("--refresh-s", help="Seconds between bundle refreshes.")] = 30.0,
    unmatched: Annotated[str, typer.Option(help="greedy, cover-then-greedy or cover.")] = "greedy",
    unknown: Annotated[str, typer.Option(help="Unknown dependency names: warn, refuse or ignore.")] = "warn",
) -> None:
    """Serve GET /v1/decide (same JSON as `qres decide --json`), /healthz, /metrics, /openapi.json."""
    from qres_client.serve import run

    settings = load_settings(config, store_dir=abs_path(store))
    run(
        str(settings.store_dir),
        host=host,
        port=port,
        refresh_s=refresh_s,
        public_keys=public_key_source(settings),
        allow_unsigned=settings.bundle.allow_unsigned,
        unmatched=unmatched,
        unknown=unknown,
    )


def register(app: typer.Typer) -> None:
    app.command()(serve)
