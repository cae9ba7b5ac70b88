"""Step timeouts from the settings, applied where a task is called."""

from __future__ import annotations

from typing import TypeVar

from prefect import Task

__all__ = ["with_timeout"]

T = TypeVar("T", bound=Task)


def with_timeout(task: T, seconds: float | None) -> T:
    """The task with a timeout (``orchestration.step_timeout_s``).

    Prefect interrupts a task that runs in the flow's main thread (an alarm signal); on a
    worker thread it can only mark the run failed once the call returns, so steps run
    there (the family solves) rely on their solvers' own time limits instead.
    """
    return task.with_options(timeout_seconds=seconds)
