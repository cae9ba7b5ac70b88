"""What every `qres` command module shares: consoles, common options, error exit."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "load_settings",
    "load_store_settings",
    "console",
    "out",
    "EXIT_FAILED",
    "EXIT_HELD",
    "EXIT_REFUSED",
    "ConfigOpt",
    "DataOpt",
    "StoreOpt",
    "SeedOpt",
    "JsonOpt",
    "QuietOpt",
    "VerboseOpt",
    "show_info_logs",
    "abs_path",
    "fail",
]


class LazyConsole:
    """A rich Console made on first use: importing rich is a tenth of a short command's start-up
    (``qres decide``, every ``--help``), and most of them never print through it."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def get(self) -> Console:
        """The real Console, for rich APIs that want one (progress bars)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


console = LazyConsole(stderr=True)
out = LazyConsole()

EXIT_FAILED, EXIT_HELD = 1, 3
EXIT_REFUSED = 4  # valid input that leaves nothing to learn or replay (NothingToLearnError)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="Config file (default ./qres.toml or $QRES_CONFIG).")
]
DataOpt = Annotated[
    str | None,
    typer.Option(
        "--data",
        "-d",
        help="Telemetry source: a folder, a glob or an fsspec "
        "URL (file://, http(s)://, s3://...); default: data_dir from config.",
    ),
]
StoreOpt = Annotated[
    Path | None, typer.Option("--store", "-s", help="Bundle store folder (default: store_dir from config).")
]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Random seed for sampling and solvers.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars, only errors and the result.")]
VerboseOpt = Annotated[
    bool, typer.Option("--verbose", "-v", help="Also print the pipeline's INFO log lines (they always go to Prefect).")
]


def abs_path(p: Path | str | None) -> Path | str | None:
    """Absolute local paths; a source string stays a string (URLs as given, local ones made absolute)."""
    if isinstance(p, str):
        return p if "://" in p else str(Path(p).expanduser().absolute())
    return p.resolve() if p is not None else None


def fail(exc: Exception) -> NoReturn:
    """One line and exit 1 (3 when refused); the message is text, not markup (``[sources.x]`` stays)."""
    from rich.markup import escape

    from policies.errors import NothingToLearnError

    if isinstance(exc, NothingToLearnError):
        console.print(
            f"[bold yellow]refused:[/] {escape(str(exc).removeprefix('refused: '))}", markup=True, highlight=False
        )
        raise typer.Exit(EXIT_REFUSED)
    console.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False)
    raise typer.Exit(EXIT_FAILED)


def load_settings(config=None, **overrides):
    """``flows.settings.load_settings``, imported on first use: pydantic-settings is most of what a
    ``--help`` would otherwise load (the CLI's top level stays light, see tests/flows/test_cli_startup.py)."""
    from flows.settings import load_settings as load

    return load(config, **overrides)


def load_store_settings(config=None, store_dir=None):
    """The store, its key folder and ``bundle.allow_unsigned`` alone (``flows.store_settings``):
    what ``decide``, ``verify`` and ``versions`` read, without pydantic-settings."""
    from flows.store_settings import load_store_settings as load
    from policies.errors import QresError

    try:
        return load(config, store_dir=store_dir)
    except QresError as exc:
        fail(exc)


def show_info_logs(verbose: bool) -> None:
    """``--verbose``: INFO lines on the console too (before Prefect configures its logging)."""
    if verbose:
        os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "INFO"
