"""`qres keys init`: the signing key pair bundles are signed with (Ed25519 + ML-DSA-65)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli import tuf as cli_tuf
from flows.cli.common import ConfigOpt, abs_path, console, fail, load_settings
from policies.errors import QresError

__all__ = ["register"]


def keys_init(
    config: ConfigOpt = None,
    key_dir: Annotated[Path | None, typer.Option("--dir", help="Key folder (default bundle.key_dir).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing key pair.")] = False,
    exist_ok: Annotated[bool, typer.Option("--exist-ok", help="Succeed quietly if keys exist.")] = False,
) -> None:
    """Create a signing key pair: qres-signing.key (mode 0600) and qres-signing.pub for clients."""
    from flows.summary import shown_path
    from qres_client.signing import PRIVATE_KEY_NAME, init_keys

    settings = load_settings(config)
    folder = abs_path(key_dir) or settings.bundle.key_dir
    if exist_ok and (folder / PRIVATE_KEY_NAME).is_file():
        console.print(f"signing keys already in {shown_path(folder)}")
        return
    try:
        private, public = init_keys(folder, overwrite=overwrite)
    except QresError as exc:
        fail(exc)
    console.print(f"created {shown_path(private)} (owner-only) and {shown_path(public)}; give clients the .pub file")


def register(app: typer.Typer) -> None:
    keys = typer.Typer(
        help="Signing keys for bundles (Ed25519 + ML-DSA-65).", no_args_is_help=True, rich_markup_mode=None
    )
    keys.command("init")(keys_init)
    cli_tuf.register(keys)
    app.add_typer(keys, name="keys")
