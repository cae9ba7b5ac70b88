"""A tiny hook so long steps can report progress to whatever front end runs the flow.

The CLI installs a rich progress bar; tests and deployments leave the no-op sink.
Tasks run in the flow's process, so a module-level sink is enough.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["ProgressSink", "set_sink", "progress_step"]

ProgressSink = Callable[[str, int, int], None]  # (step, done, total)

_sink: ProgressSink | None = None


def set_sink(sink: ProgressSink | None) -> None:
    global _sink
    _sink = sink


@contextmanager
def progress_step(step: str, total: int) -> Iterator[Callable[[int], None]]:
    """Yield an ``advance(done)`` callback for one long step."""
    sink = _sink
    if sink is not None:
        sink(step, 0, total)

    def advance(done: int) -> None:
        if sink is not None:
            sink(step, done, total)

    yield advance
    if sink is not None:
        sink(step, total, total)
