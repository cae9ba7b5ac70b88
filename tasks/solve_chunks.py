"""Solve a family's problems in chunks submitted to the flow's task runner, results in problem order.

Why chunks: Prefect's per-task cost (~15 ms) stays small next to the work, and the chunks run in
parallel on the runner (threads by default, Dask with ``qres run --runner dask``).
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.task_runners import ThreadPoolTaskRunner

from policies.errors import SolverError
from policies.families import family
from policies.solve.portfolio import PortfolioResult

__all__ = ["solve_chunk", "solve_in_chunks", "THREADS_IN_FLIGHT"]

THREADS_IN_FLIGHT = max(2, os.cpu_count() or 2)


@task(name="solve-chunk", cache_policy=NO_CACHE)
def solve_chunk(name: str, problems: Sequence[Any], **params: Any) -> list[PortfolioResult]:
    """Solve one chunk of a family's problems; deterministic compute, so no retries."""
    return family(name).solve_each(problems, **params)


def solve_in_chunks(name: str, problems: list, *, chunk_size: int, timeout_s: float | None, advance, **params):
    """Every problem's result in order; must run inside a flow (chunks go to its task runner)."""
    # Prefect cannot interrupt a worker thread (it only warns), so the timeout applies where
    # chunks run as real tasks elsewhere (Dask); threads stop on the flow's timeout.
    on_threads = isinstance(getattr(FlowRunContext.get(), "task_runner", None), ThreadPoolTaskRunner)
    chunk_task = solve_chunk.with_options(timeout_seconds=timeout_s) if timeout_s and not on_threads else solve_chunk
    chunks = [problems[i : i + chunk_size] for i in range(0, len(problems), chunk_size)]
    # On threads, at most THREADS_IN_FLIGHT chunks at once: Prefect's pool has no bound, and every
    # running chunk holds its solver's model (a 1,000-service fleet's horizon models ran out of memory).
    window = THREADS_IN_FLIGHT if on_threads else len(chunks)
    futures = deque(chunk_task.submit(name, c, **params) for c in chunks[:window])
    # A worker process that dies takes its chunk with it and the future never resolves: off
    # threads, bound the whole wait (every chunk at its timeout, one after another) and say why.
    budget_s = None if on_threads or not timeout_s else timeout_s * len(chunks)
    deadline = None if budget_s is None else time.monotonic() + budget_s
    out: list[PortfolioResult] = []
    for k in range(len(chunks)):  # in submission order: the answer does not depend on which chunk ends first
        future = futures.popleft()
        if k + window < len(chunks):
            futures.append(chunk_task.submit(name, chunks[k + window], **params))
        try:
            out.extend(future.result(timeout=None if deadline is None else max(1.0, deadline - time.monotonic())))
        except TimeoutError as exc:
            raise SolverError(
                f"{name}: {len(chunks)} solve chunks did not all come back within {budget_s:.0f} s; "
                "check that the task runner's workers are alive"
            ) from exc
        advance(len(out))
    return out
