"""Rich progress bars for long steps, fed by ``tasks.support.progress``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from tasks.support.progress import set_sink

__all__ = ["rich_progress"]


@contextmanager
def rich_progress(console: Console, *, enabled: bool = True) -> Iterator[None]:
    """Bars on a terminal; elsewhere (CI, a pipe) one line per finished step."""
    if not enabled:
        yield
        return
    if not console.is_terminal:
        finished: set[str] = set()

        def line(step: str, done: int, total: int) -> None:
            if done >= total and step not in finished:
                finished.add(step)
                console.print(f"{step}: done ({total:,})" if total > 1 else f"{step}: done")

        set_sink(line)
        try:
            yield
        finally:
            set_sink(None)
        return
    bars: dict[str, int] = {}
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:

        def sink(step: str, done: int, total: int) -> None:
            if step not in bars:
                bars[step] = progress.add_task(step, total=total)
            progress.update(bars[step], completed=done, total=total)

        set_sink(sink)
        try:
            yield
        finally:
            set_sink(None)
